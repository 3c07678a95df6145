"""The venues' WebSocket order requests built in plain Python, field by field: the oracle for
the compiled templates (``arbengine.gateways._wire``) the gateways render them from.

Each builder is what the gateway used to do per order: a dict in the venue's documented
field order, ``Grid.format`` for price and size, ``orjson.dumps``; for Binance the
published-vector-tested ``signing.binance_ws_signed_params``. ``ts`` is the value the
value the gateway's request rules give the order (Binance and Bybit: the timestamp; OKX:
the expiry; Kraken: none, its requests carry the connection's token instead).
"""

from __future__ import annotations

from typing import Any

import orjson

from arbengine.gateways.binance import _BinanceRest
from arbengine.gateways.bybit import BybitGateway
from arbengine.gateways.kraken import KrakenGateway, kraken_cl_ord_id
from arbengine.gateways.okx import OkxGateway, cl_ord_id
from arbengine.orders import Order, Side
from arbengine.venues.signing import ParamValue, binance_ws_signed_params


def binance(gw: _BinanceRest, order: Order, req_id: str, ts: int) -> bytes:
    inst = order.instrument
    params: dict[str, ParamValue] = {
        "symbol": inst.symbol,
        "side": "BUY" if order.side is Side.BUY else "SELL",
        "type": "LIMIT",
        "timeInForce": str(order.tif),
        "quantity": inst.size.format(order.size),
        "price": inst.price.format(order.price),
        "newClientOrderId": order.client_id,
        "newOrderRespType": gw.resp_type,
        "recvWindow": gw.recv_window_ms,
        "timestamp": ts,
        "apiKey": gw.credentials.api_key.reveal(),
    }
    signed = binance_ws_signed_params(gw.credentials.api_secret, params)
    return orjson.dumps({"id": req_id, "method": "order.place", "params": signed})


def okx_cl_ord_id(client_id: str) -> str:
    """The clOrdId escape character by character: Z -> ZZ, - -> Zd, _ -> Zu; any other
    character must be an ASCII letter or digit (ValueError otherwise, or past 32)."""
    escapes = {"Z": "ZZ", "-": "Zd", "_": "Zu"}
    out = []
    for ch in client_id:
        if ch in escapes:
            out.append(escapes[ch])
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            raise ValueError(f"client id {client_id!r}: {ch!r} has no clOrdId form")
    text = "".join(out)
    if not 1 <= len(text) <= 32:
        raise ValueError(f"client id {client_id!r} is {len(text)} characters as a clOrdId (1-32)")
    return text


def okx(gw: OkxGateway, order: Order, req_id: str, ts: int) -> bytes:
    inst = order.instrument
    args = {
        "instId": inst.symbol,
        "tdMode": "cash",
        "clOrdId": cl_ord_id(order.client_id),
        "side": "buy" if order.side is Side.BUY else "sell",
        "ordType": order.tif.value.lower(),
        "px": inst.price.format(order.price),
        "sz": inst.size.format(order.size),
    }
    return orjson.dumps({"id": req_id, "op": "order", "expTime": str(ts), "args": [args]})


def bybit(gw: BybitGateway, order: Order, req_id: str, ts: int) -> bytes:
    inst = order.instrument
    frame: dict[str, Any] = {
        "reqId": f"{gw._req_tag}-{req_id}",
        "header": {"X-BAPI-TIMESTAMP": str(ts), "X-BAPI-RECV-WINDOW": str(gw.recv_window_ms)},
        "op": "order.create",
        "args": [
            {
                "category": gw.category,
                "symbol": inst.symbol,
                "side": "Buy" if order.side is Side.BUY else "Sell",
                "orderType": "Limit",
                "qty": inst.size.format(order.size),
                "price": inst.price.format(order.price),
                "timeInForce": order.tif.value,
                "orderLinkId": order.client_id,
            }
        ],
    }
    return orjson.dumps(frame)


def kraken(gw: KrakenGateway, order: Order, req_id: str, ts: int) -> bytes:
    inst = order.instrument
    params = {
        "order_type": "limit",
        "side": "buy" if order.side is Side.BUY else "sell",
        "order_qty": orjson.Fragment(inst.size.format(order.size).encode()),
        "limit_price": orjson.Fragment(inst.price.format(order.price).encode()),
        "time_in_force": "ioc",
        "symbol": inst.symbol,
        "cl_ord_id": kraken_cl_ord_id(order.client_id),
        "token": gw._token,
    }
    return orjson.dumps({"method": "add_order", "params": params, "req_id": int(req_id)})
