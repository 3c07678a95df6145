"""Coinbase Advanced Trade order entry over REST (``/api/v3/brokerage``), each request
signed with its own CDP JWT (ES256 or Ed25519 key).

Docs: https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/orders/create-order
and the pages next to it (get-order, list-fills, list-orders, cancel-order, list-accounts,
get-server-time); auth:
https://docs.cdp.coinbase.com/coinbase-app/authentication-authorization/api-key-authentication.

What differs from the other venues, and how this gateway deals with it:

* **Orders**: ``sor_limit_ioc`` / ``limit_limit_fok`` with ``base_size`` and
  ``limit_price``. The create reply says only taken or refused (``success``,
  ``success_response.order_id`` or ``error_response``); state, totals and fills are read
  back with get-order and list-fills, which the base class's follow loop does.
* **A reused client_order_id is not refused**: "the order will not be created and the order
  corresponding with that ID will be returned instead". A re-send after a lost reply is
  therefore safe and is itself the answer: its success reply names the original order,
  which is then followed like any other. (``DUPLICATE_CLIENT_ORDER_ID``, which the enum
  also lists, is treated as the base class's duplicate: follow by client id.)
* **Query by client id**: get-order needs the venue's order id (its ``client_order_id``
  parameter is deprecated) and list-orders has no client-id filter, so an order whose id
  is not known here is found by scanning list-orders (this gateway's products, every
  status, newest first, a bounded number of pages) for the ``client_order_id``.
* **No timestamp window but the JWT's**: nbf..exp is 120 s. A JWT outside it, a wrong key
  or a bad signature are all HTTP 401 ``Unauthorized``, which cannot be told apart: each is
  ``ClockSkew`` (REJECTED, then a resync from ``/time``), so a skewed clock heals and a
  wrong key stays refused. ``nbf`` is backdated one second so a clock a few ms ahead of
  the venue's is not refused.
* Rate limits are HTTP 429 (``RATE_LIMIT_EXCEEDED``) with Retry-After; Coinbase has no 418.

Fees: ``commission`` / ``total_fees`` are positive charges in the quote currency;
``VenueFill.fee`` takes them as is (positive = paid).
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import orjson

from arbengine.gateways.base import (
    Balance,
    ClockSkew,
    GatewayError,
    HttpReply,
    LiveGateway,
    Rejected,
    UnknownOutcome,
    VenueFill,
    VenueOrder,
    grid_units,
)
from arbengine.orders import Order, OrderStatus, Side, TimeInForce, atoms
from arbengine.venues.signing import (
    CdpPrivateKey,
    SigningError,
    cdp_jwt,
    cdp_rest_uri,
    load_cdp_private_key,
)

__all__ = ["CoinbaseGateway"]

_API = "/api/v3/brokerage"
_STATUS = {
    "PENDING": OrderStatus.ACKED,
    "QUEUED": OrderStatus.ACKED,
    "OPEN": OrderStatus.ACKED,
    "CANCEL_QUEUED": OrderStatus.ACKED,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.CANCELED,
    "FAILED": OrderStatus.REJECTED,
}
_CONFIG = {
    TimeInForce.IOC: "sor_limit_ioc",
    TimeInForce.FOK: "limit_limit_fok",
}
_CONFIG_NAMES = ("sor_limit_ioc", "limit_limit_fok", "limit_limit_gtc", "limit_limit_gtd")


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GatewayError(f"coinbase: {what} is not an object")
    return value


def _text(d: dict[str, Any], key: str, what: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise GatewayError(f"coinbase: {what} has no text field {key!r}")
    return value


def _amount(d: dict[str, Any], key: str, what: str) -> int:
    try:
        return atoms(_text(d, key, what) or "0")
    except (ValueError, ArithmeticError):
        raise GatewayError(f"coinbase: {what} {key} is not a decimal") from None


class CoinbaseGateway(LiveGateway):
    """Coinbase Advanced Trade over REST; see the module docstring."""

    kind: ClassVar[str] = "coinbase"
    scan_pages: ClassVar[int] = 5  # list-orders pages searched for a client id

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            self._key: CdpPrivateKey = load_cdp_private_key(self.credentials.api_secret)
        except SigningError as exc:
            raise ValueError(f"{self.venue}: {exc}") from None
        if not self.credentials.api_key.reveal():
            raise ValueError(f"{self.venue}: the API key name is empty")
        self._host = urlsplit(self.rest_url).netloc

    # -- request plumbing ----------------------------------------------------------------

    def _auth(self, method: str, path: str) -> dict[str, str]:
        try:
            token = cdp_jwt(
                self.credentials.api_key.reveal(),
                self._key,
                now_s=(self.timestamp_ms() - 1000) // 1000,
                nonce=secrets.token_hex(16),
                uri=cdp_rest_uri(method, self._host, path),
            )
        except SigningError as exc:
            raise Rejected("JWT", f"coinbase: {exc}") from None
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def _call(
        self, method: str, path: str, *, query: str = "", body: Any = None
    ) -> tuple[int, Any]:
        text = orjson.dumps(body).decode() if body is not None else ""
        reply = await self._http(
            method, path, query=query, body=text, headers=self._auth(method, path)
        )
        return reply.status, self._decode(reply, path)

    def _decode(self, reply: HttpReply, path: str) -> Any:
        if reply.status == 401:
            raise ClockSkew(
                "401", "coinbase: Unauthorized (wrong key, or JWT outside its nbf..exp window)"
            )
        try:
            return orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise UnknownOutcome(
                f"coinbase {path}: HTTP {reply.status}, reply is not JSON"
            ) from None

    def _refused(self, status: int, doc: Any, path: str) -> Rejected:
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return Rejected(doc["error"][:60], f"coinbase {path}: HTTP {status}")
        return Rejected(str(status), f"coinbase {path}: HTTP {status}")

    def _is_duplicate(self, exc: Rejected) -> bool:
        return exc.code == "DUPLICATE_CLIENT_ORDER_ID"

    # -- orders --------------------------------------------------------------------------

    async def _rest_place(self, order: Order) -> VenueOrder:
        inst = order.instrument
        body = {
            "client_order_id": order.client_id,
            "product_id": inst.symbol,
            "side": "BUY" if order.side is Side.BUY else "SELL",
            "order_configuration": {
                _CONFIG[order.tif]: {
                    "base_size": inst.size.format(order.size),
                    "limit_price": inst.price.format(order.price),
                }
            },
        }
        path = f"{_API}/orders"
        try:
            status, doc = await self._call("POST", path, body=body)
        except GatewayError as exc:
            if isinstance(exc, Rejected):
                raise
            raise UnknownOutcome(str(exc)) from None  # sent: what it did is not known
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("success"), bool):
            if 400 <= status < 500 and status != 404:
                raise self._refused(status, doc, path)
            raise UnknownOutcome(f"coinbase {path}: HTTP {status}, no success flag")
        if not doc["success"]:
            err = doc.get("error_response")
            err = err if isinstance(err, dict) else {}
            code = str(err.get("error") or doc.get("failure_reason") or "UNKNOWN_FAILURE_REASON")
            preview = str(err.get("preview_failure_reason") or "")
            if code.startswith("UNKNOWN_") and preview and not preview.startswith("UNKNOWN_"):
                code = preview  # the generic code says nothing; the preview reason does
            detail = str(err.get("message") or "")[:80]
            raise Rejected(code[:60], f"coinbase create order: {detail or code}")
        ok = doc.get("success_response")
        if not isinstance(ok, dict) or not isinstance(ok.get("order_id"), str):
            raise UnknownOutcome("coinbase create order: success without an order_id")
        if (ok.get("client_order_id"), ok.get("product_id"), ok.get("side")) != (
            order.client_id,
            inst.symbol,
            body["side"],
        ):
            # The id names an older order with other terms: this one was not created.
            raise Rejected("CLIENT_ORDER_ID_REUSED", "coinbase: the id names another order")
        return VenueOrder.acked(order, ok["order_id"], "created")

    def _state(self, raw: Any, fills: tuple[VenueFill, ...]) -> VenueOrder:
        o = _obj(raw, "order")
        oid = _text(o, "order_id", "order")
        symbol = _text(o, "product_id", f"order {oid}")
        inst = self.instruments.get(symbol)
        if inst is None:
            raise GatewayError(f"coinbase: order {oid} is on a product this gateway does not trade")
        venue_status = _text(o, "status", f"order {oid}")
        status = _STATUS.get(venue_status)
        if status is None:
            raise GatewayError(f"coinbase: order {oid} has status {venue_status[:30]!r}")
        side = {"BUY": Side.BUY, "SELL": Side.SELL}.get(str(o.get("side")))
        if side is None:
            raise GatewayError(f"coinbase: order {oid} has an unknown side")
        configs = _obj(o.get("order_configuration"), f"order {oid} configuration")
        conf: dict[str, Any] = {}
        for name in _CONFIG_NAMES:
            if isinstance(configs.get(name), dict):
                conf = configs[name]
                break
        if not conf:
            raise GatewayError(f"coinbase: order {oid} is not a limit order")
        size = grid_units(inst, _text(conf, "base_size", f"order {oid}"), "size")
        filled = grid_units(inst, _text(o, "filled_size", f"order {oid}"), "size")
        if status is OrderStatus.CANCELED and filled == size:
            status = OrderStatus.FILLED
        reason = str(o.get("reject_message") or o.get("cancel_message") or "")
        return VenueOrder(
            str(o.get("client_order_id") or ""),
            oid,
            symbol,
            side,
            grid_units(inst, _text(conf, "limit_price", f"order {oid}"), "price"),
            size,
            status,
            filled,
            fills,
            reason[:120],
            venue_status,
        )

    async def _order_fills(self, oid: str, symbol: str) -> tuple[VenueFill, ...]:
        path = f"{_API}/orders/historical/fills"
        status, doc = await self._call("GET", path, query=urlencode({"order_id": oid}))
        if status != 200:
            raise self._refused(status, doc, path)
        rows = _obj(doc, "fills reply").get("fills")
        if not isinstance(rows, list):
            raise GatewayError("coinbase: fills reply has no fills list")
        inst = self.instruments[symbol]
        fills = []
        for row in rows:
            f = _obj(row, "fill")
            if f.get("order_id") != oid:
                continue
            if f.get("size_in_quote") is True:
                raise GatewayError(f"coinbase: fill of {oid} is sized in quote")
            fills.append(
                VenueFill(
                    _text(f, "trade_id", "fill"),
                    grid_units(inst, _text(f, "price", "fill"), "price"),
                    grid_units(inst, _text(f, "size", "fill"), "size"),
                    _amount(f, "commission", "fill"),
                    inst.quote,
                )
            )
        return tuple(fills)

    async def _with_fills(self, raw: Any) -> VenueOrder:
        bare = self._state(raw, ())
        if bare.filled == 0:
            return bare
        fills = await self._order_fills(bare.venue_order_id, bare.symbol)
        if sum(f.size for f in fills) != bare.filled:
            return bare  # fills lag the order's totals: the next query brings them
        return replace(bare, fills=tuple(fills))

    async def _get_order(self, oid: str) -> VenueOrder | None:
        path = f"{_API}/orders/historical/{oid}"
        status, doc = await self._call("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise self._refused(status, doc, path)
        return await self._with_fills(_obj(doc, "get order reply").get("order"))

    async def _list_orders(self, statuses: tuple[str, ...], pages: int) -> list[Any]:
        path = f"{_API}/orders/historical/batch"
        params: list[tuple[str, str]] = [("order_status", s) for s in statuses]
        params += [("product_ids", s) for s in self.instruments]
        params.append(("limit", "100"))
        cursor, out = "", []
        for _ in range(pages):
            query = urlencode(params + ([("cursor", cursor)] if cursor else []))
            status, doc = await self._call("GET", path, query=query)
            if status != 200:
                raise self._refused(status, doc, path)
            doc = _obj(doc, "list orders reply")
            rows = doc.get("orders")
            if not isinstance(rows, list):
                raise GatewayError("coinbase: list orders reply has no orders list")
            out.extend(rows)
            cursor = str(doc.get("cursor") or "")
            if not doc.get("has_next") or not cursor:
                break
        return out

    async def _rest_query(self, order: Order | str) -> VenueOrder | None:
        client_id = order if isinstance(order, str) else order.client_id
        tracked = self._tracked.get(client_id)
        if tracked is not None and tracked.venue_order_id:
            return await self._get_order(tracked.venue_order_id)
        statuses = ("OPEN", "FILLED", "CANCELLED", "EXPIRED", "FAILED")
        for row in await self._list_orders(statuses, self.scan_pages):
            if _obj(row, "order").get("client_order_id") == client_id:
                return await self._with_fills(row)
        return None

    async def _rest_fills(self, order: Order, state: VenueOrder) -> list[VenueFill]:
        return list(await self._order_fills(state.venue_order_id, state.symbol))

    async def _rest_cancel(self, client_id: str, symbol: str) -> VenueOrder | None:
        state = await self._rest_query(client_id)
        if state is None:
            return None
        path = f"{_API}/orders/batch_cancel"
        status, doc = await self._call("POST", path, body={"order_ids": [state.venue_order_id]})
        if status != 200:
            raise self._refused(status, doc, path)
        results = _obj(doc, "cancel reply").get("results")
        if not isinstance(results, list) or len(results) != 1:
            raise GatewayError("coinbase: cancel reply has no single result")
        result = _obj(results[0], "cancel result")
        if result.get("success") is not True and state.status is OrderStatus.ACKED:
            raise Rejected(str(result.get("failure_reason"))[:60], "coinbase cancel refused")
        return await self._get_order(state.venue_order_id)

    async def _rest_open_orders(self) -> list[VenueOrder]:
        return [self._state(row, ()) for row in await self._list_orders(("OPEN",), 50)]

    async def _rest_balances(self) -> dict[str, Balance]:
        path = f"{_API}/accounts"
        out: dict[str, Balance] = {}
        cursor = ""
        for _ in range(50):
            query = urlencode([("limit", "250")] + ([("cursor", cursor)] if cursor else []))
            status, doc = await self._call("GET", path, query=query)
            if status != 200:
                raise self._refused(status, doc, path)
            doc = _obj(doc, "accounts reply")
            rows = doc.get("accounts")
            if not isinstance(rows, list):
                raise GatewayError("coinbase: accounts reply has no accounts list")
            for row in rows:
                a = _obj(row, "account")
                asset = _text(a, "currency", "account")
                free = _amount(
                    _obj(a.get("available_balance"), "available_balance"), "value", asset
                )
                hold = _amount(_obj(a.get("hold"), "hold"), "value", asset)
                prev = out.get(asset)
                if prev is not None:  # several wallets of one currency: their sum
                    free, hold = free + prev.free, hold + prev.locked
                out[asset] = Balance(asset, free, hold)
            cursor = str(doc.get("cursor") or "")
            if not doc.get("has_next") or not cursor:
                break
        return out

    async def _rest_server_time_ms(self) -> int:
        path = f"{_API}/time"
        reply = await self._http("GET", path)
        try:
            doc = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise GatewayError(f"coinbase {path}: HTTP {reply.status}, not JSON") from None
        millis = _obj(doc, "time reply").get("epochMillis")
        if not isinstance(millis, str) or not millis.isdigit():
            raise GatewayError("coinbase time: epochMillis is not an integer text")
        return int(millis)
