"""Binance order gateways: spot and USDⓈ-M futures, each REST + WebSocket API order entry.

Wire facts (Binance spot docs, https://developers.binance.com/docs/binance-spot-api-docs/
rest-api and .../web-socket-api; USDⓈ-M: https://developers.binance.com/docs/derivatives/
usds-margined-futures/trade/rest-api):

* SIGNED REST: every parameter (``timestamp``, ``recvWindow`` included) goes in the query
  string (GET/DELETE) or the form body (POST); ``signature`` = HMAC-SHA256 hex of the query
  string followed by the body, appended last; the key travels in ``X-MBX-APIKEY``.
* The venue accepts ``timestamp < serverTime + 1000 and serverTime - timestamp <=
  recvWindow``, else -1021: that is ``ClockSkew`` and a resync.
* 4xx with ``{"code", "msg"}`` is a refusal; 429/418 carry ``Retry-After`` (seconds); 5xx and
  -1006/-1007 ("execution status unknown") are ``UnknownOutcome``.
* ``newClientOrderId`` is unique only *among open orders*: once an IOC order is done, the
  venue would accept the same id again as a new order. A re-send after an unknown outcome
  therefore asks the venue for the client id first and re-sends only if it has none.
* Spot replies with ``newOrderRespType=FULL`` carry the trades (``fills``); a query gives only
  totals, so the trades of a finished order come from ``GET /api/v3/myTrades?orderId``.
  USDⓈ-M replies never carry trades: ``GET /fapi/v1/userTrades?orderId``.
* Positions (one-way mode): ``GET /fapi/v2/positionRisk`` ``positionAmt`` (signed, base) and
  ``entryPrice`` (the average entry price, rounded by the venue): a ``Position`` with its
  entry value and the bound the rounding puts on it. ``/fapi/v2/balance`` ``balance`` is the
  wallet balance, moved by realized PnL and fees, not by the positions' notional.
* Fees: ``commission`` is what the trade cost, positive when charged, in
  ``commissionAsset`` (spot: the asset received; USDⓈ-M: USDT). ``VenueFill.fee`` keeps that
  sign (positive = paid).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlencode

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
    VenueFill,
    VenueOrder,
    grid_units,
    order_texts,
)
from arbengine.orders import Order, OrderStatus, Side, TimeInForce, atoms
from arbengine.venues.signing import ParamValue, binance_rest_signature, binance_ws_payload

__all__ = ["BinanceGateway", "BinanceUsdmGateway"]

# Binance order states -> ours. EXPIRED is an IOC/FOK remainder (or a FOK that could not
# fill); EXPIRED_IN_MATCH an order expired by self-trade prevention: both done, not filled.
_STATUS = {
    "NEW": OrderStatus.ACKED,
    "PARTIALLY_FILLED": OrderStatus.ACKED,
    "PENDING_CANCEL": OrderStatus.ACKED,
    "PENDING_NEW": OrderStatus.ACKED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.CANCELED,
    "EXPIRED_IN_MATCH": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
}
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
# Codes whose request may or may not have been executed (errors.md, 10xx).
_UNKNOWN_CODES = frozenset({-1000, -1001, -1006, -1007})
# Too many requests / orders: the venue wants us to wait.
_RATE_CODES = frozenset({-1003, -1015})
_CLOCK_CODES = frozenset({-1021})
_INTERVAL_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}


def _obj(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise GatewayError(f"binance {what}: expected a JSON object")
    return data


def _text(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise GatewayError(f"binance {what}: field {key!r} missing or not text")


def _amount(data: Mapping[str, Any], key: str, what: str) -> int:
    text = _text(data, key, what)
    try:
        return atoms(text)
    except (ValueError, ArithmeticError):
        raise GatewayError(f"binance {what}: {key} {text!r} is not a decimal") from None


def _error(code: int, msg: str, status: int, retry_after_s: float) -> GatewayError:
    """A venue error (REST body or WS API ``error``) as the gateway's error kinds."""
    text = f"{code}"
    if code in _CLOCK_CODES:
        return ClockSkew(text, msg)
    if code in _RATE_CODES or status in (418, 429):
        return RateLimited(text, msg, retry_after_s, status == 418)
    if code in _UNKNOWN_CODES or status >= 500:
        return UnknownOutcome(f"binance {text}: {msg}")
    return Rejected(text, msg)


class _BinanceRest(LiveGateway):
    """What both Binance markets share: signing, error bodies, order and trade parsing."""

    kind: ClassVar[str] = ""
    api: ClassVar[str] = "/api/v3"  # order, openOrders, time live under it
    trades_path: ClassVar[str] = "/api/v3/myTrades"
    resp_type: ClassVar[str] = "FULL"
    duplicate_codes: ClassVar[frozenset[str]] = frozenset()
    # The documented default limits the usage headers count against (the account's own
    # may be lower; then the 429 path still applies).
    order_limit: ClassVar[int] = 100  # new orders per order_window_ms
    order_window_ms: ClassVar[int] = 10_000
    weight_limit: ClassVar[int] = 6000  # request weight per minute
    # Spot's cancel reply names the order's id origClientOrderId (clientOrderId is the
    # cancel's own); USDⓈ-M's names it clientOrderId.
    cancel_client_key: ClassVar[str] = "origClientOrderId"

    def __init__(
        self, venue: str, instruments: Iterable[Instrument], *args: Any, **kw: Any
    ) -> None:
        super().__init__(venue, instruments, *args, **kw)
        # Client ids handed to the venue at least once -> the timestamp of the last WS
        # request (0: sent over REST).
        self._sent_ids: dict[str, int] = {}
        self.used_weight_1m = 0  # X-MBX-USED-WEIGHT-1M of the last reply
        self.order_count = 0  # X-MBX-ORDER-COUNT-10S (spot) / -1M (USDⓈ-M) of the last order

    # -- signed requests ---------------------------------------------------------------------

    def _signed(self, params: list[tuple[str, str]]) -> str:
        params = [
            *params,
            ("recvWindow", str(self.recv_window_ms)),
            ("timestamp", str(self.timestamp_ms())),
        ]
        text = urlencode(params)
        sig = binance_rest_signature(self.credentials.api_secret, text)
        return f"{text}&signature={sig}"

    async def _call(
        self, method: str, path: str, params: list[tuple[str, str]], *, signed: bool = True
    ) -> tuple[HttpReply, Any]:
        """One request; the parsed JSON of a 2xx reply, else the venue's error raised."""
        headers = {"X-MBX-APIKEY": self.credentials.api_key.reveal()}
        text = self._signed(params) if signed else urlencode(params)
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            reply = await self._http(method, path, body=text, headers=headers)
        else:
            reply = await self._http(method, path, query=text, headers=headers)
        self._usage(reply.headers)
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            data = None
        if 200 <= reply.status < 300:
            if data is None:
                raise GatewayError(
                    f"binance {method} {path}: malformed reply ({len(reply.body)} bytes)"
                )
            return reply, data
        if isinstance(data, dict) and isinstance(data.get("code"), int):
            raise _error(data["code"], str(data.get("msg", "")), reply.status, 0.0)
        raise GatewayError(f"binance {method} {path}: HTTP {reply.status} without an error code")

    def _usage(self, headers: Mapping[str, str]) -> None:
        order_count = -1
        for name, value in headers.items():
            upper = name.upper()
            if upper == "X-MBX-USED-WEIGHT-1M" and value.isdigit():
                self.used_weight_1m = int(value)
            elif upper in ("X-MBX-ORDER-COUNT-10S", "X-MBX-ORDER-COUNT-1M") and value.isdigit():
                self.order_count = order_count = int(value)
        if order_count >= self.order_limit:
            self._pause_window(self.order_window_ms)
        if self.used_weight_1m >= self.weight_limit:
            self._pause_window(60_000)

    def _pause_window(self, window_ms: int) -> None:
        """Binance's counters reset when their fixed window on the venue clock turns."""
        now = self.timestamp_ms()
        self._usage_exhausted((window_ms - now % window_ms) / 1000)

    def _is_duplicate(self, exc: Rejected) -> bool:
        return exc.code in self.duplicate_codes and (
            exc.code != "-2010" or "Duplicate order" in exc.message
        )

    # -- replies -----------------------------------------------------------------------------

    def _inst(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise GatewayError(f"binance: reply for unknown symbol {symbol!r}")
        return inst

    def _order_state(self, data: Any, what: str, client_key: str = "clientOrderId") -> VenueOrder:
        d = _obj(data, what)
        inst = self._inst(_text(d, "symbol", what))
        status_text = _text(d, "status", what)
        status = _STATUS.get(status_text)
        side = _SIDES.get(_text(d, "side", what))
        if status is None or side is None:
            raise GatewayError(f"binance {what}: unexpected status/side {status_text!r}")
        filled = grid_units(inst, _text(d, "executedQty", what), "size")
        fills: list[VenueFill] = []
        raw_fills = d.get("fills", [])
        if not isinstance(raw_fills, list):
            raise GatewayError(f"binance {what}: fills is not a list")
        for f in raw_fills:
            fills.append(
                self._venue_fill(inst, f, f"{what} fill", id_key="tradeId", size_key="qty")
            )
        return VenueOrder(
            client_id=_text(d, client_key, what),
            venue_order_id=_text(d, "orderId", what),
            symbol=inst.symbol,
            side=side,
            price=grid_units(inst, _text(d, "price", what)),
            size=grid_units(inst, _text(d, "origQty", what), "size"),
            status=status,
            filled=filled,
            fills=tuple(fills),
            reason=status_text.lower() if status.done else "",
            venue_status=status_text,
        )

    def _venue_fill(
        self, inst: Instrument, data: Any, what: str, *, id_key: str, size_key: str
    ) -> VenueFill:
        f = _obj(data, what)
        return VenueFill(
            trade_id=_text(f, id_key, what),
            price=grid_units(inst, _text(f, "price", what)),
            size=grid_units(inst, _text(f, size_key, what), "size"),
            fee=_amount(f, "commission", what),
            fee_asset=_text(f, "commissionAsset", what),
        )

    # -- the hooks ---------------------------------------------------------------------------

    def _order_params(self, order: Order) -> list[tuple[str, str]]:
        size, price = order_texts(order)
        return self._order_fields(
            order.instrument, order.side, order.tif, size, price, order.client_id
        )

    def _order_fields(
        self, inst: Instrument, side: Side, tif: TimeInForce, quantity: str, price: str, cid: str
    ) -> list[tuple[str, str]]:
        """A new order's params in the order the venue documents them (REST and WS API)."""
        return [
            ("symbol", inst.symbol),
            ("side", "BUY" if side is Side.BUY else "SELL"),
            ("type", "LIMIT"),
            ("timeInForce", str(tif)),
            ("quantity", quantity),
            ("price", price),
            ("newClientOrderId", cid),
            ("newOrderRespType", self.resp_type),
        ]

    async def _rest_place(self, order: Order) -> VenueOrder:
        if order.client_id in self._sent_ids:
            # A re-send after an unknown outcome: the venue only refuses a client id that
            # is still open, so a done order would be placed twice. Ask first.
            try:
                known = await self._rest_query(order)
            except (RateLimited, ClockSkew):
                raise
            except GatewayError as exc:
                raise UnknownOutcome(f"binance: re-send check failed: {exc}") from None
            if known is not None:
                return known
        self._sent_ids[order.client_id] = 0
        try:
            _, data = await self._call("POST", f"{self.api}/order", self._order_params(order))
            return self._order_state(data, "new order")
        except (Rejected, UnknownOutcome):
            raise
        except GatewayError as exc:
            # A garbled answer to a placement says nothing about whether it executed.
            raise UnknownOutcome(str(exc)) from None

    async def _rest_query(self, order: Order | str) -> VenueOrder | None:
        if isinstance(order, Order):
            client_id, symbols = order.client_id, [order.instrument.symbol]
        else:
            client_id, symbols = order, list(self.instruments)
        for symbol in symbols:
            params = [("symbol", symbol), ("origClientOrderId", client_id)]
            try:
                _, data = await self._call("GET", f"{self.api}/order", params)
            except Rejected as exc:
                if exc.code == "-2013":  # Order does not exist.
                    continue
                raise
            state = self._order_state(data, "query order")
            if state.filled and not state.fills:
                # A query gives totals only; whoever asks (the executor resolving an
                # UNKNOWN order, the follow loop) needs the trades themselves.
                fills = await self._trades(state)
                state = replace(state, fills=tuple(fills))
            return state
        return None

    async def _rest_fills(self, order: Order, state: VenueOrder) -> list[VenueFill]:
        return await self._trades(state)

    async def _trades(self, state: VenueOrder) -> list[VenueFill]:
        """The trades of one order (``orderId``), oldest first."""
        params = [("symbol", state.symbol), ("orderId", state.venue_order_id)]
        _, data = await self._call("GET", self.trades_path, params)
        if not isinstance(data, list):
            raise GatewayError("binance trades: expected a JSON list")
        inst = self._inst(state.symbol)
        return [self._venue_fill(inst, t, "trade", id_key="id", size_key="qty") for t in data]

    async def _rest_cancel(self, client_id: str, symbol: str) -> VenueOrder | None:
        params = [("symbol", symbol), ("origClientOrderId", client_id)]
        try:
            _, data = await self._call("DELETE", f"{self.api}/order", params)
        except Rejected as exc:
            if exc.code in ("-2011", "-2013"):  # Unknown order sent. / Order does not exist.
                return None
            raise
        return self._order_state(data, "cancel order", client_key=self.cancel_client_key)

    async def _rest_open_orders(self) -> list[VenueOrder]:
        _, data = await self._call("GET", f"{self.api}/openOrders", [])
        if not isinstance(data, list):
            raise GatewayError("binance openOrders: expected a JSON list")
        out = []
        for item in data:
            symbol = _obj(item, "open order").get("symbol")
            if symbol in self.instruments:  # others are not ours to manage here
                out.append(self._order_state(item, "open order"))
        return out

    async def _rest_server_time_ms(self) -> int:
        _, data = await self._call("GET", f"{self.api}/time", [], signed=False)
        value = _obj(data, "time").get("serverTime")
        if not isinstance(value, int) or isinstance(value, bool):
            raise GatewayError("binance time: serverTime missing")
        return value

    # -- WebSocket API -----------------------------------------------------------------------
    # Both markets' WS APIs take the same ``order.place`` request (the REST order's params
    # plus ``apiKey``, ``timestamp`` as a JSON integer and ``signature``: HMAC-SHA256 hex of
    # every other param sorted by name, not percent-encoded) and answer
    # ``{"id","status","result"|"error","rateLimits"}``. Spot: https://developers.binance.com/
    # docs/binance-spot-api-docs/web-socket-api; USDⓈ-M (``wss://ws-fapi.binance.com/ws-fapi/
    # v1``): https://developers.binance.com/docs/derivatives/usds-margined-futures/
    # websocket-api-general-info and .../trade/websocket-api. A USDⓈ-M result is the order's
    # totals (RESULT), never its trades: ``_report_complete`` fetches them from userTrades.

    def _forget(self, client_id: str) -> None:
        super()._forget(client_id)
        self._sent_ids.pop(client_id, None)

    def _ws_templates(self, inst: Instrument, side: Side, tif: TimeInForce) -> WsRequest:
        # The payload signed is every param but the signature, sorted by name; the frame
        # carries them in the documented order, recvWindow and timestamp as JSON integers.
        fields = self._order_fields(inst, side, tif, "{sz}", "{px}", "{cid}")
        api_key = self.credentials.api_key.reveal()
        signed: dict[str, ParamValue] = {
            **dict(fields),
            "recvWindow": self.recv_window_ms,
            "timestamp": "{ts}",
            "apiKey": api_key,
        }
        # The same params, in place: timestamp keeps its position as a JSON integer.
        params: dict[str, object] = {
            **signed,
            "timestamp": orjson.Fragment(b"{ts}"),
            "signature": "{sig}",
        }
        frame = orjson.dumps({"id": "{id}", "method": "order.place", "params": params})
        return WsRequest(
            OrderTemplate(frame.decode(), inst.price, inst.size),
            OrderTemplate(binance_ws_payload(signed), inst.price, inst.size),
            remember=self._sent_ids,
        )

    def _ws_key(self) -> bytes:
        return self.credentials.api_secret.reveal().encode()

    def _ws_message(self, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # unattributable: the watch task resolves the order over REST
        if not isinstance(msg, dict) or not isinstance(msg.get("id"), str):
            return
        req_id: str = msg["id"]
        status = msg.get("status")
        if not isinstance(status, int):
            self._ws_answer(req_id, UnknownOutcome("binance ws: reply without a status"))
            return
        self._ws_usage(msg.get("rateLimits"))
        if status == 200:
            try:
                state = self._order_state(msg.get("result"), "ws order.place")
            except GatewayError as exc:
                self._ws_answer(req_id, UnknownOutcome(str(exc)))
                return
            self._ws_answer(req_id, state)
            return
        err = msg.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), int):
            self._ws_answer(req_id, UnknownOutcome(f"binance ws: status {status} without error"))
            return
        wait = 0.0
        data = err.get("data")
        if isinstance(data, dict):
            # retryAfter is the epoch ms at which the limit lifts, serverTime the venue's now.
            with contextlib.suppress(TypeError, ValueError):
                wait = max(0.0, (int(data["retryAfter"]) - int(data["serverTime"])) / 1000)
        if status in (418, 429) and wait <= 0:
            wait = self.default_backoff_s
        self._ws_answer(req_id, _error(err["code"], str(err.get("msg", "")), status, wait))

    def _ws_usage(self, limits: Any) -> None:
        """The WS API reports each limit with its count: an exhausted ORDERS window pauses
        sending as the REST headers do."""
        if not isinstance(limits, list):
            return
        for item in limits:
            if not isinstance(item, dict) or item.get("rateLimitType") != "ORDERS":
                continue
            count, limit, num = item.get("count"), item.get("limit"), item.get("intervalNum")
            unit_ms = _INTERVAL_MS.get(str(item.get("interval")))
            if not all(isinstance(v, int) for v in (count, limit, num)) or unit_ms is None:
                continue
            assert isinstance(count, int) and isinstance(limit, int) and isinstance(num, int)
            if count >= limit:
                self._pause_window(num * unit_ms)


class BinanceGateway(_BinanceRest):
    """Binance spot: REST, and order entry over the WebSocket API (``/ws-api/v3``) when
    ``ws_url`` is given and connected (REST otherwise, and to resolve what a dropped
    socket left unanswered)."""

    kind: ClassVar[str] = "binance"
    duplicate_codes: ClassVar[frozenset[str]] = frozenset({"-2010"})

    async def _rest_balances(self) -> dict[str, Balance]:
        _, data = await self._call("GET", "/api/v3/account", [("omitZeroBalances", "true")])
        rows = _obj(data, "account").get("balances")
        if not isinstance(rows, list):
            raise GatewayError("binance account: balances missing")
        out: dict[str, Balance] = {}
        for row in rows:
            r = _obj(row, "balance")
            asset = _text(r, "asset", "balance")
            out[asset] = Balance(
                asset, _amount(r, "free", "balance"), _amount(r, "locked", "balance")
            )
        return out


class BinanceUsdmGateway(_BinanceRest):
    """Binance USDⓈ-M futures (one-way position mode: ``positionSide`` BOTH): REST, and
    order entry over the futures WebSocket API (``/ws-fapi/v1``) when ``ws_url`` is given
    and connected (REST otherwise, and to resolve what a dropped socket left unanswered)."""

    kind: ClassVar[str] = "binance_usdm"
    api: ClassVar[str] = "/fapi/v1"
    trades_path: ClassVar[str] = "/fapi/v1/userTrades"
    resp_type: ClassVar[str] = "RESULT"  # the final state of an IOC/FOK, not just "NEW"
    duplicate_codes: ClassVar[frozenset[str]] = frozenset({"-4116"})  # ClientOrderId is duplicated.
    cancel_client_key: ClassVar[str] = "clientOrderId"
    order_limit: ClassVar[int] = 1200
    order_window_ms: ClassVar[int] = 60_000
    weight_limit: ClassVar[int] = 2400

    async def _rest_balances(self) -> dict[str, Balance]:
        _, data = await self._call("GET", "/fapi/v2/balance", [])
        if not isinstance(data, list):
            raise GatewayError("binance balance: expected a JSON list")
        out: dict[str, Balance] = {}
        for row in data:
            r = _obj(row, "balance")
            asset = _text(r, "asset", "balance")
            total = _amount(r, "balance", "balance")
            free = _amount(r, "availableBalance", "balance")
            out[asset] = Balance(asset, free, total - free)
        return out

    async def _rest_positions(self) -> dict[str, Position]:
        _, data = await self._call("GET", "/fapi/v2/positionRisk", [])
        if not isinstance(data, list):
            raise GatewayError("binance positionRisk: expected a JSON list")
        out: dict[str, Position] = {}
        for row in data:
            r = _obj(row, "position")
            symbol = _text(r, "symbol", "position")
            inst = self.instruments.get(symbol)
            if inst is None:
                continue
            text = _text(r, "positionAmt", "position")
            negative = text.startswith("-")
            size = grid_units(inst, text.removeprefix("-"), "size")
            entry = _text(r, "entryPrice", "position")
            pos = Position.of(
                inst, -size if negative else size, entry, "binance position: entryPrice"
            )
            out[symbol] = out[symbol] + pos if symbol in out else pos
        return out
