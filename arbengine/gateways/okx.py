"""OKX v5 spot order gateway: signed REST (place, query, fills, cancel, open orders,
balances, server time) and order entry on the private WebSocket once logged in.

Wire facts (https://www.okx.com/docs-v5/en/):

* Every private request carries OK-ACCESS-KEY/SIGN/TIMESTAMP/PASSPHRASE
  (``signing.okx_headers``; the sign covers the path with its query string and the exact
  JSON body text sent). OKX refuses a timestamp more than 30 s from its clock (50102);
  the tighter window we want is the place request's ``expTime`` ("Transaction Timeouts"):
  the venue's clock now plus ``recv_window_ms``, after which OKX does not process the
  request (50037 "Order expired."; 50036 when the deadline is already past on arrival).
  Both are ``ClockSkew``: the base resyncs against ``GET /api/v5/public/time``.
* ``POST /api/v5/trade/order`` answers only the acceptance (``ordId``, ``sCode``), never
  fills; a refusal is top-level code "1" with the reason in ``data[0].sCode``. The state
  comes from ``GET /api/v5/trade/order`` (``state``, ``accFillSz``, totals) and the trades
  from ``GET /api/v5/trade/fills?ordId=``.
* Fees: OKX writes a charge as a *negative* ``fee`` (a rebate positive), in ``feeCcy``:
  for spot the asset received (base on a buy, quote on a sell). ``VenueFill.fee`` counts a
  charge positive, so every fee is negated here.

Retries by client id need care on OKX: clOrdId is unique only among *pending* orders
(#order-book-trading-trade-post-place-order, "clOrdId"), so re-sending an IOC that already
finished would place it twice instead of meeting 51016. A retry therefore first asks the
venue for the client id; only when the venue does not know it, and the earlier request's
``expTime`` has passed (so it can no longer be processed), is the order sent again.

clOrdId is "a combination of case-sensitive alphanumerics ... up to 32 characters"
(#order-book-trading-trade-post-place-order); the engine's client ids carry dashes
(``<arb>-B``). ``cl_ord_id`` writes them reversibly in OKX's alphabet (``Z`` escapes:
``ZZ`` for Z, ``Zd`` for ``-``, ``Zu`` for ``_``) and ``client_id_of`` reads them back, so
the venue's replies and open orders name the engine's ids.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import orjson

from arbengine._core.instrument import Instrument
from arbengine.gateways._wire import OrderTemplate, WsRequest
from arbengine.gateways.base import (
    Balance,
    ClockSkew,
    GatewayError,
    LiveGateway,
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
from arbengine.venues.signing import okx_headers, okx_ws_login_args

__all__ = ["OkxGateway", "cl_ord_id", "client_id_of"]

_ESCAPES = {"Z": "ZZ", "-": "Zd", "_": "Zu"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}


def cl_ord_id(client_id: str) -> str:
    """The engine's client id as an OKX clOrdId (alphanumerics only; reversible)."""
    # Z first: the other two escapes bring in a Z of their own. Three C-level passes, not
    # a Python loop per character: this runs for every order an arb sends.
    text = client_id.replace("Z", "ZZ").replace("-", "Zd").replace("_", "Zu")
    if text and not (text.isascii() and text.isalnum()):
        bad = next(
            (c for c in client_id if c not in _ESCAPES and not (c.isascii() and c.isalnum())),
            "",
        )
        raise ValueError(f"client id {client_id!r}: {bad!r} has no clOrdId form")
    if not 1 <= len(text) <= 32:
        raise ValueError(f"client id {client_id!r} is {len(text)} characters as a clOrdId (1-32)")
    return text


def client_id_of(cl: str) -> str:
    """``cl_ord_id`` undone; an id not written by it (an order placed elsewhere) as is."""
    out = []
    i = 0
    while i < len(cl):
        ch = cl[i]
        if ch == "Z" and i + 1 < len(cl) and cl[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[cl[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_STATES = {
    "live": OrderStatus.ACKED,
    "partially_filled": OrderStatus.ACKED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "mmp_canceled": OrderStatus.CANCELED,
}
_CLOCK_CODES = frozenset({"50102", "50112", "50036", "50037"})
# 50011 rate limit (HTTP 200 or 429), 50013 systems busy, 50040 too frequent, 50061
# sub-account order rate limit.
_RATE_CODES = frozenset({"50011", "50013", "50040", "50061"})
# "does not mean that the request was successful or failed, please check the result":
# 50001 service unavailable, 50004 endpoint timeout, 50026 system error, 51054/51149
# order timed out.
_UNKNOWN_CODES = frozenset({"50001", "50004", "50026", "51054", "51149"})
_NO_ORDER = frozenset({"51603"})
_CANCEL_GONE = frozenset({"51400", "51401", "51402", "51603"})
_ORD_TYPE = {TimeInForce.IOC: "ioc", TimeInForce.FOK: "fok"}
_PING_S = 20.0  # OKX cuts a connection silent for 30 s; "ping" text keeps it up


def _error(code: str, msg: str, where: str) -> GatewayError:
    """The exception for one OKX error code (top-level ``code`` or per-order ``sCode``)."""
    text = f"okx {where}: {msg}" if msg else f"okx {where}"
    if code in _CLOCK_CODES:
        return ClockSkew(code, text)
    if code in _RATE_CODES:
        return RateLimited(code, text, LiveGateway.default_backoff_s, False)
    if code in _UNKNOWN_CODES:
        return UnknownOutcome(f"{code}: {text}")
    return Rejected(code, text)


def _str(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise GatewayError(f"okx {where}: reply without {key!r}")
    return value


class OkxGateway(LiveGateway):
    """OKX v5 spot (``tdMode`` cash) order entry; see the module docstring."""

    kind = "okx"

    def __init__(
        self,
        venue: str,
        instruments: Iterable[Instrument],
        credentials: VenueCredentials,
        *,
        demo: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(venue, instruments, credentials, **kwargs)
        if credentials.passphrase is None:
            raise ValueError(f"{venue}: OKX needs an API passphrase")
        self.demo = demo  # adds x-simulated-trading: 1 (OKX demo trading)
        self.ws_error = ""  # the venue's last refusal of the WS login
        self._exp_ms: dict[str, int] = {}  # client id -> expTime of its last placement

    # -- plumbing ----------------------------------------------------------------------

    def _ws_options(self) -> dict[str, Any]:
        return {"ping_interval_s": _PING_S, "ping_text": b"ping"}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, str] | None = None,
        signed: bool = True,
        exp_ms: int | None = None,
    ) -> tuple[str, str, list[Any]]:
        """One request: (code, msg, data) of the reply envelope. Transport problems raise
        as ``_http`` does; a body that is not OKX's envelope raises ``GatewayError``."""
        query = urlencode(params) if params else ""
        text = orjson.dumps(body).decode() if body is not None else ""
        headers: dict[str, str] = {}
        if signed:
            cred = self.credentials
            assert cred.passphrase is not None
            headers = okx_headers(
                cred.api_key.reveal(),
                cred.api_secret,
                cred.passphrase,
                self.timestamp_ms(),
                method,
                path + (f"?{query}" if query else ""),
                text,
                demo=self.demo,
            )
            if exp_ms is not None:
                headers["expTime"] = str(exp_ms)
        reply = await self._http(method, path, query=query, body=text, headers=headers)
        where = f"{method} {path}"
        try:
            envelope = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise GatewayError(
                f"okx {where}: malformed reply (HTTP {reply.status}, {len(reply.body)} bytes)"
            ) from None
        if not isinstance(envelope, dict):
            raise GatewayError(f"okx {where}: unexpected reply (HTTP {reply.status})")
        code, msg, data = envelope.get("code"), envelope.get("msg", ""), envelope.get("data", [])
        if not isinstance(code, str) or not isinstance(msg, str) or not isinstance(data, list):
            raise GatewayError(f"okx {where}: unexpected reply (HTTP {reply.status})")
        return code, msg, data

    async def _ok(self, method: str, path: str, **kw: Any) -> list[Any]:
        """``_call`` whose top-level code must be 0 (else the mapped error)."""
        code, msg, data = await self._call(method, path, **kw)
        if code != "0":
            raise _error(code, msg, f"{method} {path}")
        return data

    def _inst(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise GatewayError(f"okx: {symbol!r} is not traded through this gateway")
        return inst

    def _order_args(self, order: Order) -> dict[str, str]:
        size, price = order_texts(order)
        cl = cl_ord_id(order.client_id)
        return self._order_fields(order.instrument, order.side, order.tif, cl, price, size)

    @staticmethod
    def _order_fields(
        inst: Instrument, side: Side, tif: TimeInForce, cl_ord: str, px: str, sz: str
    ) -> dict[str, str]:
        """A new order's args (REST body and WS ``order`` request)."""
        return {
            "instId": inst.symbol,
            "tdMode": "cash",
            "clOrdId": cl_ord,
            "side": "buy" if side is Side.BUY else "sell",
            "ordType": _ORD_TYPE[tif],
            "px": px,
            "sz": sz,
        }

    def _ack(self, order: Order, code: str, msg: str, data: list[Any], where: str) -> VenueOrder:
        """The placement reply (REST or WS) as an acked state, or the refusal raised."""
        item = data[0] if len(data) == 1 and isinstance(data[0], dict) else None
        if code in ("0", "1", "2") and item is not None:
            s_code = _str(item, "sCode", where)
            if s_code != "0":
                raise _error(s_code, _str(item, "sMsg", where), where)
            if code != "0":
                raise GatewayError(f"okx {where}: code {code} with sCode 0")
            return VenueOrder.acked(order, _str(item, "ordId", where), "accepted")
        if code == "0":
            raise GatewayError(f"okx {where}: accepted without the order's data")
        raise _error(code, msg, where)

    # -- REST hooks --------------------------------------------------------------------

    async def _rest_place(self, order: Order) -> VenueOrder:
        try:
            return await self._place_once(order)
        except (Rejected, UnknownOutcome):
            raise
        except GatewayError as exc:
            # A reply we cannot read says nothing about whether the venue took the order.
            raise UnknownOutcome(str(exc)) from None

    async def _place_once(self, order: Order) -> VenueOrder:
        cid = order.client_id
        if cid in self._exp_ms:
            # A retry: the first attempt may have been done (see the module docstring).
            known = await self._retry_query(order)
            if known is not None:
                return known
            wait_ms = self._exp_ms[cid] - self.timestamp_ms()
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000 + 0.01)
                known = await self._retry_query(order)
                if known is not None:
                    return known
        exp = self.timestamp_ms() + self.recv_window_ms
        self._exp_ms[cid] = exp
        path = "/api/v5/trade/order"
        code, msg, data = await self._call("POST", path, body=self._order_args(order), exp_ms=exp)
        return self._ack(order, code, msg, data, f"POST {path}")

    async def _retry_query(self, order: Order) -> VenueOrder | None:
        """What the venue knows of a client id we sent before. A refused *query* says
        nothing about the order, so it must not reject it: it stays unknown."""
        try:
            return await self._rest_query(order)
        except ClockSkew as exc:
            with contextlib.suppress(GatewayError):
                await self.sync_time()
            raise UnknownOutcome(f"okx retry query: {exc}") from None
        except GatewayError as exc:  # Rejected, RateLimited, an unreadable reply
            if isinstance(exc, UnknownOutcome):
                raise
            raise UnknownOutcome(f"okx retry query: {exc}") from None

    async def _rest_query(self, order: Order | str) -> VenueOrder | None:
        if isinstance(order, Order):
            return await self._query_one(order.instrument.symbol, order.client_id)
        # Only a client id: OKX wants the instrument too, so ask for each we trade.
        for symbol in self.instruments:
            state = await self._query_one(symbol, order)
            if state is not None:
                return state
        return None

    async def _query_one(self, symbol: str, client_id: str) -> VenueOrder | None:
        path = "/api/v5/trade/order"
        code, msg, data = await self._call(
            "GET", path, params={"instId": symbol, "clOrdId": cl_ord_id(client_id)}
        )
        if code in _NO_ORDER:
            return None
        if code != "0":
            raise _error(code, msg, f"GET {path}")
        if len(data) != 1 or not isinstance(data[0], dict):
            raise GatewayError(f"okx GET {path}: expected one order, got {len(data)}")
        state = self._parse_order(data[0], f"GET {path}")
        if state.filled > 0:
            fills = await self._fetch_fills(state)
            state = replace(state, fills=tuple(fills))
        return state

    def _parse_order(self, item: Mapping[str, Any], where: str) -> VenueOrder:
        symbol = _str(item, "instId", where)
        inst = self._inst(symbol)
        venue_state = _str(item, "state", where)
        status = _STATES.get(venue_state)
        if status is None:
            raise GatewayError(f"okx {where}: unknown order state {venue_state!r}")
        side = _str(item, "side", where)
        if side not in ("buy", "sell"):
            raise GatewayError(f"okx {where}: unknown side {side!r}")
        reason = ""
        if status is OrderStatus.CANCELED:
            source = item.get("cancelSource")
            reason = f"canceled (cancelSource {source})" if source else "canceled"
        return VenueOrder(
            client_id_of(_str(item, "clOrdId", where)),
            _str(item, "ordId", where),
            symbol,
            Side.BUY if side == "buy" else Side.SELL,
            grid_units(inst, _str(item, "px", where)),
            grid_units(inst, _str(item, "sz", where), "size"),
            status,
            filled=grid_units(inst, _str(item, "accFillSz", where) or "0", "size"),
            reason=reason,
            venue_status=venue_state,
        )

    async def _fetch_fills(self, state: VenueOrder) -> list[VenueFill]:
        path = "/api/v5/trade/fills"
        params = {"instType": "SPOT", "instId": state.symbol, "ordId": state.venue_order_id}
        data = await self._ok("GET", path, params=params)
        inst = self._inst(state.symbol)
        where = f"GET {path}"
        fills: list[VenueFill] = []
        for item in data:
            if not isinstance(item, dict):
                raise GatewayError(f"okx {where}: unexpected fill entry")
            if item.get("ordId") != state.venue_order_id:
                continue
            try:
                fee = -atoms(_str(item, "fee", where) or "0")  # OKX: a charge is negative
            except (ValueError, ArithmeticError):
                raise GatewayError(
                    f"okx {where}: fee {item.get('fee')!r} is not a decimal"
                ) from None
            fills.append(
                VenueFill(
                    _str(item, "tradeId", where),
                    grid_units(inst, _str(item, "fillPx", where)),
                    grid_units(inst, _str(item, "fillSz", where), "size"),
                    fee,
                    _str(item, "feeCcy", where),
                )
            )
        fills.reverse()  # OKX lists newest first
        return fills

    async def _rest_fills(self, order: Order, state: VenueOrder) -> list[VenueFill]:
        # The fills list can trail the order's totals for a moment: ask again briefly.
        fills: list[VenueFill] = []
        for _ in range(20):
            with contextlib.suppress(GatewayError):
                fills = await self._fetch_fills(state)
                if sum(f.size for f in fills) >= state.filled:
                    break
            await asyncio.sleep(self.follow_interval_s)
        return fills

    async def _rest_cancel(self, client_id: str, symbol: str) -> VenueOrder | None:
        path = "/api/v5/trade/cancel-order"
        code, msg, data = await self._call(
            "POST", path, body={"instId": symbol, "clOrdId": cl_ord_id(client_id)}
        )
        item = data[0] if len(data) == 1 and isinstance(data[0], dict) else None
        s_code = item.get("sCode") if item is not None else None
        if code == "0" and s_code == "0":
            return await self._query_one(symbol, client_id)
        if code == "1" and isinstance(s_code, str):
            if s_code in _CANCEL_GONE:  # already finished, or never there
                return await self._query_one(symbol, client_id)
            raise _error(s_code, str(item.get("sMsg", "")) if item else "", f"POST {path}")
        raise _error(code, msg, f"POST {path}")

    async def _rest_open_orders(self) -> list[VenueOrder]:
        path = "/api/v5/trade/orders-pending"
        data = await self._ok("GET", path, params={"instType": "SPOT"})
        out = []
        for item in data:
            if not isinstance(item, dict):
                raise GatewayError(f"okx GET {path}: unexpected order entry")
            if item.get("instId") in self.instruments:
                out.append(self._parse_order(item, f"GET {path}"))
        return out

    async def _rest_balances(self) -> dict[str, Balance]:
        path = "/api/v5/account/balance"
        data = await self._ok("GET", path)
        where = f"GET {path}"
        if len(data) != 1 or not isinstance(data[0], dict):
            raise GatewayError(f"okx {where}: expected one account entry")
        details = data[0].get("details")
        if not isinstance(details, list):
            raise GatewayError(f"okx {where}: reply without 'details'")
        out: dict[str, Balance] = {}
        for d in details:
            if not isinstance(d, dict):
                raise GatewayError(f"okx {where}: unexpected balance entry")
            ccy = _str(d, "ccy", where)
            try:
                free = atoms(_str(d, "availBal", where) or "0")
                locked = atoms(_str(d, "frozenBal", where) or "0")
            except (ValueError, ArithmeticError):
                raise GatewayError(f"okx {where}: {ccy} balance is not a decimal") from None
            out[ccy] = Balance(ccy, free, locked)
        return out

    async def _rest_server_time_ms(self) -> int:
        path = "/api/v5/public/time"
        data = await self._ok("GET", path, signed=False)
        if len(data) != 1 or not isinstance(data[0], dict):
            raise GatewayError(f"okx GET {path}: unexpected reply")
        ts = _str(data[0], "ts", f"GET {path}")
        if not ts.isascii() or not ts.isdigit():
            raise GatewayError(f"okx GET {path}: ts {ts!r} is not epoch ms")
        return int(ts)

    # -- WebSocket hooks ---------------------------------------------------------------

    def _ws_connected_frames(self) -> list[bytes]:
        cred = self.credentials
        assert cred.passphrase is not None
        args = okx_ws_login_args(
            cred.api_key.reveal(), cred.api_secret, cred.passphrase, self.timestamp_ms() // 1000
        )
        return [orjson.dumps({"op": "login", "args": [args]})]

    def _forget(self, client_id: str) -> None:
        super()._forget(client_id)
        self._exp_ms.pop(client_id, None)

    def _ws_templates(self, inst: Instrument, side: Side, tif: TimeInForce) -> WsRequest:
        # {ts} is the request's expTime: the venue clock plus the receive window.
        args = self._order_fields(inst, side, tif, "{cid}", "{px}", "{sz}")
        frame = orjson.dumps({"id": "{id}", "op": "order", "expTime": "{ts}", "args": [args]})
        return WsRequest(
            OrderTemplate(frame.decode(), inst.price, inst.size),
            ts_add_ms=self.recv_window_ms,
            id_map=cl_ord_id,
            remember=self._exp_ms,
        )

    def _ws_message(self, payload: bytes) -> None:
        if payload == b"pong":
            return
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.ws_error = f"malformed frame ({len(payload)} bytes)"
            return
        if not isinstance(msg, dict):
            return
        event = msg.get("event")
        if event == "login":
            if msg.get("code") == "0":
                self.ws_error = ""
                self._ws_ready()
            return
        if event == "error":
            # A refused login (60009, 60006 ...): orders keep going over REST.
            self.ws_error = f"{msg.get('code')}: {msg.get('msg')}"
            return
        if msg.get("op") != "order" or not isinstance(msg.get("id"), str):
            return
        req_id: str = msg["id"]
        client_id = self._ws_pending.get(req_id)
        if client_id is None:
            return
        order = self._tracked[client_id].order
        code, text, data = msg.get("code"), msg.get("msg", ""), msg.get("data", [])
        answer: VenueOrder | GatewayError
        if not isinstance(code, str) or not isinstance(text, str) or not isinstance(data, list):
            answer = UnknownOutcome("okx ws order: unexpected reply")
        else:
            try:
                answer = self._ack(order, code, text, data, "ws order")
            except GatewayError as exc:
                answer = exc
        if isinstance(answer, GatewayError) and not isinstance(answer, Rejected):
            # Not an answer about the order: ask the venue over REST with the same id.
            answer = UnknownOutcome(str(answer))
        self._ws_answer(req_id, answer)

    def _is_duplicate(self, exc: Rejected) -> bool:
        return exc.code == "51016"
