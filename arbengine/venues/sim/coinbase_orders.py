"""Simulated Coinbase Advanced Trade REST order entry on ``CoinbaseSim``'s aiohttp app,
backed by ``SimExchange``.

The wire follows the Advanced Trade REST reference
(https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/orders/create-order,
.../orders/get-order, .../orders/list-fills, .../orders/list-orders, .../orders/cancel-order,
.../accounts/list-accounts, .../public/get-server-time) and CDP key authentication
(https://docs.cdp.coinbase.com/coinbase-app/authentication-authorization/api-key-authentication):

* Every private call carries ``Authorization: Bearer <JWT>``; the JWT is checked with
  ``signing.cdp_verify_jwt`` against the account's public key (ES256 or Ed25519), at the
  venue's clock (``exchange.now_ms()``, skew included): nbf <= now < exp (120 s). Its
  ``uri`` claim must be ``"<METHOD> <host><path>"`` of this very request. Anything wrong
  (unknown key name, bad signature, expired or not yet valid, other uri) is HTTP 401 with
  the body ``Unauthorized``, as Coinbase answers; there is no other timestamp window.
* ``POST /api/v3/brokerage/orders``: ``client_order_id``, ``product_id``, ``side``
  ``BUY|SELL``, ``order_configuration`` with one of ``sor_limit_ioc`` / ``limit_limit_fok``
  / ``limit_limit_gtc`` (``base_size``, ``limit_price``). Success:
  ``{"success":true,"success_response":{"order_id","product_id","side","client_order_id"},
  "order_configuration":{..}}``. A refusal is HTTP 200 ``{"success":false,
  "error_response":{"error","message","error_details","preview_failure_reason",
  "new_order_failure_reason"}}``. A ``client_order_id`` already used is not refused: "If
  the ID provided is not unique, the order will not be created and the order corresponding
  with that ID will be returned instead" -- the original order's success reply.
* ``GET /api/v3/brokerage/orders/historical/{order_id}`` -> ``{"order":{..}}`` (404
  ``NOT_FOUND`` otherwise) with ``status`` OPEN, FILLED, CANCELLED (cancelled, or an IOC /
  FOK whose remainder did not fill: the docs do not say which word Coinbase uses there;
  the gateway reads CANCELLED and EXPIRED alike), ``filled_size``,
  ``average_filled_price``, ``total_fees``, ``number_of_fills``.
* ``GET .../orders/historical/fills?order_id=`` -> ``{"fills":[{"trade_id","order_id",
  "price","size","commission","liquidity_indicator","size_in_quote":false,..}],"cursor"}``;
  the commission is a positive charge in the quote currency.
* ``GET .../orders/historical/batch`` (``order_status`` and ``product_ids`` repeatable,
  ``limit``, ``cursor``) -> ``{"orders":[..],"sequence":"0","has_next","cursor"}``, newest
  first. It has no client-order-id filter.
* ``POST .../orders/batch_cancel`` ``{"order_ids":[..]}`` -> ``{"results":[{"success",
  "failure_reason","order_id"}]}``.
* ``GET /api/v3/brokerage/accounts`` -> ``{"accounts":[{"uuid","currency",
  "available_balance":{"value","currency"},"hold":{..},..}],"has_next","cursor","size"}``.
* ``GET /api/v3/brokerage/time`` (public) -> ``{"iso","epochSeconds","epochMillis"}``.

Faults: REST_DELAY / REST_429 / REST_5XX before every call (429 with ``Retry-After``), the
order fates of ``SimExchange.fate`` on create (ORDER_429: HTTP 429 ``RATE_LIMIT_EXCEEDED``
with Retry-After; ORDER_TIMEOUT: executed, then the connection is dropped unanswered;
Coinbase has no 418, so ORDER_418 is not simulated), and TRUNCATED (the first half of the
reply body) on every private reply.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.venues.signing import SigningError, cdp_verify_jwt, load_cdp_private_key
from arbengine.venues.sim.exchange import (
    RejectKind,
    SimExchange,
    SimOrder,
    SimReject,
    atoms_text,
)
from arbengine.venues.sim.faults import Fault

if TYPE_CHECKING:
    from arbengine.venues.sim.coinbase import CoinbaseSim

__all__ = ["CoinbaseOrders"]

_API = "/api/v3/brokerage"
_CONFIGS = {"sor_limit_ioc": "IOC", "limit_limit_fok": "FOK", "limit_limit_gtc": "GTC"}
_CONFIG_OF = {tif: name for name, tif in _CONFIGS.items()}
_TIF_WORD = {"IOC": "IMMEDIATE_OR_CANCEL", "FOK": "FILL_OR_KILL", "GTC": "GOOD_UNTIL_CANCELLED"}
# SimReject kind -> (error / new_order_failure_reason, preview_failure_reason, message).
_REJECTS = {
    RejectKind.UNKNOWN_SYMBOL: ("INVALID_PRODUCT_ID", "UNKNOWN_PREVIEW_FAILURE_REASON"),
    RejectKind.BAD_PRICE: ("INVALID_PRICE_PRECISION", "PREVIEW_INVALID_PRICE_PRECISION"),
    RejectKind.BAD_SIZE: ("INVALID_SIZE_PRECISION", "PREVIEW_INVALID_SIZE_PRECISION"),
    RejectKind.MIN_SIZE: ("UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"),
    RejectKind.MIN_NOTIONAL: ("UNKNOWN_FAILURE_REASON", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
    RejectKind.INSUFFICIENT_BALANCE: ("INSUFFICIENT_FUND", "PREVIEW_INSUFFICIENT_FUND"),
    RejectKind.BAD_TIF: ("UNSUPPORTED_ORDER_CONFIGURATION", "UNKNOWN_PREVIEW_FAILURE_REASON"),
    RejectKind.INJECTED: ("UNKNOWN_FAILURE_REASON", "UNKNOWN_PREVIEW_FAILURE_REASON"),
    RejectKind.DUPLICATE_CLIENT_ID: ("UNKNOWN_FAILURE_REASON", "UNKNOWN_PREVIEW_FAILURE_REASON"),
    RejectKind.NOT_FOUND: ("UNKNOWN_FAILURE_REASON", "UNKNOWN_PREVIEW_FAILURE_REASON"),
}
_ALL_STATUSES = ("OPEN", "FILLED", "CANCELLED", "EXPIRED", "FAILED")

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse | None]]


def _uuid(kind: int, n: int) -> str:
    # Stable, distinct, UUID-shaped ids (order ids and trade ids live in separate spaces).
    return str(uuid.UUID(int=((n * 0x9E3779B97F4A7C15 + kind) % 2**128)))


def _time(ms: int) -> str:
    """RFC 3339 UTC with microseconds, as the brokerage API writes times."""
    secs, rest = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rest:03d}000Z"


class CoinbaseOrders:
    """The brokerage endpoints of one ``CoinbaseSim``; see the module docstring."""

    def __init__(self, sim: CoinbaseSim) -> None:
        self.sim = sim
        self.exchange: SimExchange = sim.exchange
        self._keys: dict[str, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey] = {}
        self._ids: dict[str, int] = {}  # order uuid -> sim order id
        self.unauthorized = 0  # 401s given (tests read it)

    def routes(self, app: web.Application) -> None:
        app.router.add_get(f"{_API}/time", self._time)
        add = app.router.add_route
        add("POST", f"{_API}/orders", self._private(self._create))
        add("POST", f"{_API}/orders/batch_cancel", self._private(self._batch_cancel))
        add("GET", f"{_API}/orders/historical/batch", self._private(self._list))
        add("GET", f"{_API}/orders/historical/fills", self._private(self._fills))
        add("GET", f"{_API}/orders/historical/{{order_id}}", self._private(self._get))
        add("GET", f"{_API}/accounts", self._private(self._accounts))

    # -- envelope and auth ---------------------------------------------------------------

    def _json(self, body: Any, status: int = 200) -> web.Response:
        data = orjson.dumps(body)
        if self.sim.faults.take(Fault.TRUNCATED, None, "brokerage reply"):
            data = data[: max(1, len(data) // 2)]
        return web.Response(status=status, body=data, content_type="application/json")

    def _error(self, status: int, error: str, message: str) -> web.Response:
        body = {"error": error, "error_details": message, "message": message}
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

    async def _time(self, request: web.Request) -> web.Response:
        now = self.exchange.now_ms()
        body = {"iso": _time(now), "epochSeconds": str(now // 1000), "epochMillis": str(now)}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def _public_key(self, key_name: str) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
        key = self._keys.get(key_name)
        if key is None:
            account = self.exchange.accounts[key_name]
            ref = CredentialRef(source="env", name="SIM_COINBASE")
            key = load_cdp_private_key(Secret(account.secret, ref)).public_key()
            self._keys[key_name] = key
        return key

    def _account_of(self, request: web.Request) -> str | None:
        """The account key whose JWT authorises this request, or None (-> 401)."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        token = auth.removeprefix("Bearer ").strip()
        try:
            head = orjson.loads(_b64url_part(token.split(".")[0]))
        except (ValueError, IndexError):
            return None
        kid = head.get("kid") if isinstance(head, dict) else None
        if not isinstance(kid, str) or kid not in self.exchange.accounts:
            return None
        try:
            _, claims = cdp_verify_jwt(
                token, self._public_key(kid), now_s=self.exchange.now_ms() // 1000
            )
        except SigningError:
            return None
        if claims.get("uri") != f"{request.method} {request.host}{request.path}":
            return None
        return kid

    def _private(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            failed = await self.sim._rest_faults(None)
            if failed is not None:
                return failed
            key = self._account_of(request)
            if key is None:
                self.unauthorized += 1
                return web.Response(status=401, text="Unauthorized\n")
            reply = await handler(request, key)
            if reply is None:  # the reply is lost: drop the connection, answer nothing
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            return reply

        return endpoint

    # -- orders --------------------------------------------------------------------------

    def _order_uuid(self, order: SimOrder) -> str:
        oid = _uuid(1, order.order_id)
        self._ids[oid] = order.order_id
        return oid

    def _find(self, key: str, order_uuid: str) -> SimOrder | None:
        order_id = self._ids.get(order_uuid)
        return None if order_id is None else self.exchange.get(key, order_id=order_id)

    def _config(self, order: SimOrder) -> dict[str, Any]:
        inst = self.exchange.markets[order.symbol].instrument
        conf: dict[str, Any] = {
            "base_size": inst.size.format(order.size),
            "limit_price": inst.price.format(order.price),
        }
        if order.tif == "GTC":
            conf["post_only"] = False
        return {_CONFIG_OF[order.tif]: conf}

    def _status(self, order: SimOrder) -> str:
        if order.open:
            return "OPEN"
        return "FILLED" if order.status == "FILLED" else "CANCELLED"

    def _success(self, order: SimOrder) -> dict[str, Any]:
        oid = self._order_uuid(order)
        return {
            "success": True,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": oid,
            "success_response": {
                "order_id": oid,
                "product_id": order.symbol,
                "side": order.side,
                "client_order_id": order.client_id,
            },
            "order_configuration": self._config(order),
        }

    def _refusal(self, error: str, preview: str, message: str) -> dict[str, Any]:
        return {
            "success": False,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": "",
            "error_response": {
                "error": error,
                "message": message,
                "error_details": message,
                "preview_failure_reason": preview,
                "new_order_failure_reason": error,
            },
        }

    async def _create(self, request: web.Request, key: str) -> web.StreamResponse | None:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._error(400, "INVALID_ARGUMENT", "request body is not JSON")
        if not isinstance(body, dict):
            return self._error(400, "INVALID_ARGUMENT", "request body must be an object")
        client_id = body.get("client_order_id")
        symbol = body.get("product_id")
        side = body.get("side")
        configs = body.get("order_configuration")
        if not isinstance(client_id, str) or not client_id:
            return self._error(400, "INVALID_ARGUMENT", "client_order_id is required")
        if not isinstance(symbol, str) or not isinstance(configs, dict) or len(configs) != 1:
            return self._error(400, "INVALID_ARGUMENT", "product_id and one order_configuration")
        existing = self.exchange.get(key, client_id=client_id)
        if existing is not None:  # the order that id names, not a new one
            return self._json(self._success(existing))
        if side not in ("BUY", "SELL"):
            return self._json(self._refusal("INVALID_SIDE", "UNKNOWN_PREVIEW_FAILURE_REASON", ""))
        ((name, conf),) = configs.items()
        tif = _CONFIGS.get(name)
        if tif is None or not isinstance(conf, dict):
            return self._json(
                self._refusal(
                    "UNSUPPORTED_ORDER_CONFIGURATION",
                    "UNKNOWN_PREVIEW_FAILURE_REASON",
                    f"order configuration {name[:40]} is not simulated",
                )
            )
        fate = self.exchange.fate(symbol)
        if fate.kind is Fault.ORDER_429:
            return self.sim._rest_error(429, {"Retry-After": _seconds(fate.seconds)})
        try:
            order = self.exchange.place(
                key,
                symbol,
                side,
                str(conf.get("limit_price", "")),
                str(conf.get("base_size", "")),
                tif,
                client_id,
                fate=fate,
            )
        except SimReject as exc:
            error, preview = _REJECTS[exc.kind]
            return self._json(self._refusal(error, preview, exc.message))
        if fate.lost_reply:
            return None
        return self._json(self._success(order))

    def _order_json(self, order: SimOrder) -> dict[str, Any]:
        inst = self.exchange.markets[order.symbol].instrument
        filled_value = self.exchange.notional(order.symbol, 1, 1) * order.quote_units
        avg = "0"
        if order.filled:
            avg = str(
                (Decimal(order.quote_units) * Decimal(inst.tick) / order.filled).quantize(
                    Decimal(inst.tick)
                )
            )
        status = self._status(order)
        fees = order.fee_total
        return {
            "order_id": self._order_uuid(order),
            "product_id": order.symbol,
            "user_id": "sim-user",
            "order_configuration": self._config(order),
            "side": order.side,
            "client_order_id": order.client_id,
            "status": status,
            "time_in_force": _TIF_WORD[order.tif],
            "created_time": _time(order.created_ms),
            "completion_percentage": str(Decimal(100 * order.filled) / order.size),
            "filled_size": inst.size.format(order.filled),
            "average_filled_price": avg,
            "fee": "",
            "number_of_fills": str(len(order.fills)),
            "filled_value": atoms_text(filled_value),
            "pending_cancel": False,
            "size_in_quote": False,
            "total_fees": atoms_text(fees),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": atoms_text(
                filled_value + fees if order.side == "BUY" else filled_value - fees
            ),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": "LIMIT",
            "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": not order.open,
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "" if order.open or status == "FILLED" else "Order cancelled",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0",
            "is_liquidation": False,
            "last_fill_time": _time(order.fills[-1].ts_ms) if order.fills else None,
        }

    async def _get(self, request: web.Request, key: str) -> web.StreamResponse | None:
        order = self._find(key, request.match_info["order_id"])
        if order is None:
            return self._error(404, "NOT_FOUND", "order with this orderID was not found")
        return self._json({"order": self._order_json(order)})

    async def _fills(self, request: web.Request, key: str) -> web.StreamResponse | None:
        wanted = request.query.getall("order_id", []) or request.query.getall("order_ids", [])
        orders = [o for o in (self._find(key, oid) for oid in wanted) if o is not None]
        if not wanted:
            orders = [o for o in self.exchange.orders.values() if o.account == key]
        fills = []
        for order in orders:
            inst = self.exchange.markets[order.symbol].instrument
            for f in order.fills:
                fills.append(
                    {
                        "entry_id": _uuid(3, f.trade_id),
                        "trade_id": _uuid(2, f.trade_id),
                        "order_id": self._order_uuid(order),
                        "trade_time": _time(f.ts_ms),
                        "trade_type": "FILL",
                        "price": inst.price.format(f.price),
                        "size": inst.size.format(f.size),
                        "commission": atoms_text(f.fee),
                        "product_id": order.symbol,
                        "sequence_timestamp": _time(f.ts_ms),
                        "liquidity_indicator": "TAKER",
                        "size_in_quote": False,
                        "user_id": "sim-user",
                        "side": order.side,
                        "retail_portfolio_id": "sim-portfolio",
                    }
                )
        return self._json({"fills": fills, "cursor": ""})

    async def _list(self, request: web.Request, key: str) -> web.StreamResponse | None:
        q = request.query
        statuses = set(q.getall("order_status", [])) or set(_ALL_STATUSES)
        products = set(q.getall("product_ids", []))
        try:
            limit = int(q.get("limit", "100"))
            start = int(q.get("cursor", "0") or "0")
        except ValueError:
            return self._error(400, "INVALID_ARGUMENT", "limit and cursor must be integers")
        orders = [
            o
            for o in sorted(self.exchange.orders.values(), key=lambda o: -o.order_id)
            if o.account == key
            and self._status(o) in statuses
            and (not products or o.symbol in products)
        ]
        page = orders[start : start + max(1, limit)]
        more = start + len(page) < len(orders)
        return self._json(
            {
                "orders": [self._order_json(o) for o in page],
                "sequence": "0",
                "has_next": more,
                "cursor": str(start + len(page)) if more else "",
            }
        )

    async def _batch_cancel(self, request: web.Request, key: str) -> web.StreamResponse | None:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._error(400, "INVALID_ARGUMENT", "request body is not JSON")
        ids = body.get("order_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return self._error(400, "INVALID_ARGUMENT", "order_ids must be a list of strings")
        results = []
        for oid in ids:
            order = self._find(key, oid)
            ok = order is not None and order.open
            if ok and order is not None:
                self.exchange.cancel(key, order_id=order.order_id)
            results.append(
                {
                    "success": ok,
                    "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON"
                    if ok
                    else "UNKNOWN_CANCEL_ORDER",
                    "order_id": oid,
                }
            )
        return self._json({"results": results})

    async def _accounts(self, request: web.Request, key: str) -> web.StreamResponse | None:
        account = self.exchange.accounts[key]
        assets = sorted(set(account.free) | set(account.locked))
        rows = []
        for asset in assets:
            rows.append(
                {
                    "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{asset}")),
                    "name": f"{asset} Wallet",
                    "currency": asset,
                    "available_balance": {
                        "value": atoms_text(account.free.get(asset, 0)),
                        "currency": asset,
                    },
                    "default": True,
                    "active": True,
                    "created_at": "2024-01-01T00:00:00.000Z",
                    "updated_at": "2024-01-01T00:00:00.000Z",
                    "deleted_at": None,
                    "type": "ACCOUNT_TYPE_FIAT"
                    if asset in ("USD", "EUR")
                    else "ACCOUNT_TYPE_CRYPTO",
                    "ready": True,
                    "hold": {"value": atoms_text(account.locked.get(asset, 0)), "currency": asset},
                    "retail_portfolio_id": "sim-portfolio",
                }
            )
        return self._json({"accounts": rows, "has_next": False, "cursor": "", "size": len(rows)})


def _b64url_part(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"
