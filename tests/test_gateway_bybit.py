"""BybitGateway end to end over loopback against the simulated Bybit v5 venue (spot).

Every test runs the real gateway (aiohttp REST, picows WebSocket) against ``BybitSim``,
whose order API verifies the signature, the key and the timestamp as Bybit does and
matches against its own true book. The books are paused so a test can work out, from the
book, exactly which trades an order must make; balances are checked against the sim's
account to the atom.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways.base import (
    GatewayError,
    HttpReply,
    Position,
    UnknownOutcome,
    VenueCredentials,
)
from arbengine.gateways.bybit import BybitGateway
from arbengine.orders import Order, OrderStatus, Side, TimeInForce
from arbengine.venues import signing
from arbengine.venues.sim import Fault
from arbengine.venues.sim.bybit import BybitSim
from arbengine.venues.sim.model import ASK, BID
from tests.gateway_rig import Recorder, fee_up, walk
from tests.waiting import fast_backoff, until

KEY = "sim-bybit-key"
SECRET = "sim-bybit-secret-0123456789"
REF = CredentialRef("env", "BYBIT_TEST")
SYMBOL = "BTCUSDT"
FEE_STEP = 10**10  # the venue rounds fees up to 1e-8
ONE = 10**18  # atoms in one coin


@dataclass
class Rig:
    sim: BybitSim
    inst: Instrument
    events: Recorder
    limits: list[tuple[str, float, bool]]
    gateways: list[BybitGateway] = field(default_factory=list)

    async def gateway(
        self, *, secret: str = SECRET, ws: bool = False, cls: type[BybitGateway] = BybitGateway
    ) -> BybitGateway:
        gw = cls(
            "bybit",
            [self.inst],
            VenueCredentials(Secret(KEY, REF), Secret(secret, REF)),
            rest_url=self.sim.rest_url,
            ws_url=self.sim.trade_ws_url if ws else None,
            timeout_s=1.0,
            on_rate_limit=lambda venue, seconds, banned: self.limits.append(
                (venue, seconds, banned)
            ),
            ws_backoff=fast_backoff(),
        )
        gw.set_listener(self.events)
        await gw.start()
        self.gateways.append(gw)
        return gw

    def order(
        self, cid: str, side: Side, price: int, size: int, tif: TimeInForce = TimeInForce.IOC
    ) -> Order:
        return Order(cid, "arb", self.inst, side, price, size, tif)

    async def done(self, cid: str, timeout: float = 4.0) -> tuple[OrderStatus, str]:
        return await self.events.final(cid, timeout)

    def account(self) -> dict[str, int]:
        acct = self.sim.exchange.accounts[KEY]
        return {a: v for a, v in acct.free.items()}


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = BybitSim([SYMBOL], category="spot", seed=3, interval_s=0.01)
    await sim.start()
    sim.pause()  # a still book: each test works out its trades from it
    sim.exchange.add_account(KEY, SECRET, balances={"USDT": "100000", "BTC": "2"})
    inst = Instrument("bybit", SYMBOL, "BTC", "USDT", "0.01", "0.000001")
    r = Rig(sim, inst, Recorder(), [])
    try:
        yield r
        assert r.events.dones == len(r.events.done), "an order got a second final state"
    finally:
        for gw in r.gateways:
            await gw.close()
        await sim.stop()


def asks(rig: Rig) -> list[tuple[int, int]]:
    return rig.sim.sources[SYMBOL].book.levels(ASK)


def bids(rig: Rig) -> list[tuple[int, int]]:
    return rig.sim.sources[SYMBOL].book.levels(BID)


def base_atoms(lots: int) -> int:
    return lots * ONE // 1_000_000


def quote_atoms(ticks: int, lots: int) -> int:
    return ticks * lots * ONE // 100 // 1_000_000


def no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert "\n" not in text


# -- the simulator's own checks ------------------------------------------------------------


async def _raw(
    sim: BybitSim, path: str, body: dict[str, Any], *, secret: str = SECRET, ts: int | None = None
) -> dict[str, Any]:
    text = orjson.dumps(body).decode()
    stamp = sim.exchange.now_ms() if ts is None else ts
    headers = signing.bybit_headers(KEY, Secret(secret, REF), stamp, 5000, text)
    headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as session,
        session.post(sim.rest_url + path, data=text, headers=headers) as resp,
    ):
        assert resp.status == 200
        reply: dict[str, Any] = orjson.loads(await resp.read())
        return reply


async def test_sim_verifies_signature_key_and_window(rig: Rig) -> None:
    body = {"category": "spot", "symbol": SYMBOL, "side": "Buy", "orderType": "Limit"}
    body |= {"qty": "0.010000", "price": "1000.00", "timeInForce": "GTC"}
    bad = await _raw(rig.sim, "/v5/order/create", body, secret="wrong")
    assert bad["retCode"] == 10004 and SECRET not in bad["retMsg"]
    now = rig.sim.exchange.now_ms()
    late = await _raw(rig.sim, "/v5/order/create", body, ts=now - 5000 - 50)
    assert late["retCode"] == 10002
    ahead = await _raw(rig.sim, "/v5/order/create", body, ts=now + 1500)
    assert ahead["retCode"] == 10002
    assert rig.sim.exchange.requests == 0  # nothing reached the matching engine
    ok = await _raw(rig.sim, "/v5/order/create", body | {"orderLinkId": "raw-1"})
    assert ok["retCode"] == 0 and ok["result"]["orderLinkId"] == "raw-1"
    dup = await _raw(rig.sim, "/v5/order/create", body | {"orderLinkId": "raw-1"})
    assert dup["retCode"] == 110072


# -- REST order entry ----------------------------------------------------------------------


async def test_wrong_secret_is_rejected(rig: Rig) -> None:
    gw = await rig.gateway(secret="not-the-secret")
    gw.submit(rig.order("w1", Side.BUY, asks(rig)[0][0], 1000))
    status, reason = await rig.done("w1")
    assert status is OrderStatus.REJECTED
    assert reason.startswith("10004:")
    assert rig.sim.exchange.requests == 0
    no_secret(reason, "not-the-secret")
    assert "not-the-secret" not in reason


async def test_clock_skew_resyncs_and_the_next_order_goes_through(rig: Rig) -> None:
    gw = await rig.gateway()
    rig.sim.exchange.skew_ms = 20_000  # the venue's clock jumps 20 s ahead of ours
    top = asks(rig)[0]
    gw.submit(rig.order("s1", Side.BUY, top[0], 1000))
    status, reason = await rig.done("s1")
    assert status is OrderStatus.REJECTED and reason.startswith("10002:")
    await until(lambda: gw.counters.clock_resyncs == 1 and abs(gw.offset_ms - 20_000) < 1000)
    gw.submit(rig.order("s2", Side.BUY, top[0], 1000))
    status, _ = await rig.done("s2")
    assert status is OrderStatus.FILLED


async def test_ioc_crossing_fills_exactly_and_moves_balances(rig: Rig) -> None:
    gw = await rig.gateway()
    levels = asks(rig)[:3]
    size = levels[0][1] + levels[1][1] + 1  # the first two levels and one lot of the third
    before = rig.account()
    gw.submit(rig.order("b1", Side.BUY, levels[2][0], size))
    status, reason = await rig.done("b1")
    assert status is OrderStatus.FILLED, reason
    assert rig.events.kinds("b1") == ["ack", "fill", "fill", "fill", "done"]
    fills = rig.events.fills["b1"]
    want = walk(asks(rig), levels[2][0], size, buy=True)
    assert want == [levels[0], levels[1], (levels[2][0], 1)]
    assert [(f.price, f.size) for f in fills] == want
    sim_order = rig.sim.exchange.get(KEY, client_id="b1")
    assert sim_order is not None
    assert [f.trade_id for f in fills] == [str(t.trade_id) for t in sim_order.fills]
    # A spot buy pays its fee in the coin it receives (BTC), 0.1%, rounded up to 1e-8.
    assert [f.fee for f in fills] == [fee_up(base_atoms(s), 10) for _, s in want]
    assert {f.fee_asset for f in fills} == {"BTC"}
    after = rig.account()
    spent = sum(quote_atoms(p, s) for p, s in want)
    got = sum(base_atoms(s) for _, s in want) - sum(f.fee for f in fills)
    assert after["USDT"] == before["USDT"] - spent
    assert after["BTC"] == before["BTC"] + got
    balances = await gw.balances()
    assert {a: b.total for a, b in balances.items()} == after
    assert all(b.locked == 0 for b in balances.values())


async def test_ioc_sell_fee_in_quote(rig: Rig) -> None:
    gw = await rig.gateway()
    top = bids(rig)[0]
    size = min(top[1], 5000)
    before = rig.account()
    gw.submit(rig.order("sell1", Side.SELL, top[0], size))
    status, _ = await rig.done("sell1")
    assert status is OrderStatus.FILLED
    (fill,) = rig.events.fills["sell1"]
    notional = quote_atoms(top[0], size)
    assert (fill.price, fill.size, fill.fee, fill.fee_asset) == (
        top[0],
        size,
        fee_up(notional, 10),
        "USDT",
    )
    after = rig.account()
    assert after["USDT"] == before["USDT"] + notional - fill.fee
    assert after["BTC"] == before["BTC"] - base_atoms(size)


async def test_ioc_inside_the_book_is_canceled_with_partial_fills(rig: Rig) -> None:
    gw = await rig.gateway()
    top = asks(rig)[0]
    gw.submit(rig.order("p1", Side.BUY, top[0], top[1] + 10))
    status, reason = await rig.done("p1")
    assert status is OrderStatus.CANCELED
    assert reason.startswith("PartiallyFilledCanceled")
    assert [(f.price, f.size) for f in rig.events.fills["p1"]] == [top]
    state = await gw.query("p1")
    assert state is not None and state.filled == top[1] and state.status is OrderStatus.CANCELED


async def test_fok_not_fillable_is_canceled_with_nothing(rig: Rig) -> None:
    gw = await rig.gateway()
    top = asks(rig)[0]
    before = rig.account()
    gw.submit(rig.order("f1", Side.BUY, top[0], top[1] + 10, TimeInForce.FOK))
    status, reason = await rig.done("f1")
    assert (status, reason) == (OrderStatus.CANCELED, "Cancelled")
    assert "f1" not in rig.events.fills
    assert rig.events.kinds("f1") == ["ack", "done"]
    assert rig.account() == before


async def test_invalid_orders_are_rejected_with_the_venue_code(rig: Rig) -> None:
    gw = await rig.gateway()
    top = asks(rig)[0]
    gw.submit(rig.order("tiny", Side.BUY, top[0], 1))  # ~0.06 USDT: under minOrderAmt 5
    gw.submit(rig.order("huge", Side.BUY, top[0], 10_000_000))  # 10 BTC: no such USDT
    assert (await rig.done("tiny"))[1].startswith("170140:")
    assert (await rig.done("huge"))[1].startswith("170131:")
    assert rig.events.done["tiny"][0] is OrderStatus.REJECTED
    assert rig.events.done["huge"][0] is OrderStatus.REJECTED
    assert gw.counters.reject_codes == {"170140": 1, "170131": 1}


async def test_query_open_orders_cancel_and_balances(rig: Rig) -> None:
    gw = await rig.gateway()
    assert await gw.query("never-sent") is None
    top = asks(rig)[0]
    gw.submit(rig.order("q1", Side.BUY, top[0], 1000))
    assert (await rig.done("q1"))[0] is OrderStatus.FILLED
    known = await gw.query("q1")
    sim_order = rig.sim.exchange.get(KEY, client_id="q1")
    assert known is not None and sim_order is not None
    assert (known.status, known.filled, known.venue_order_id) == (
        OrderStatus.FILLED,
        1000,
        str(sim_order.order_id),
    )
    assert [(f.price, f.size) for f in known.fills] == [(top[0], 1000)]
    rig.sim.exchange.rest(KEY, SYMBOL, "BUY", "30000.00", "0.010000", "rest-1")
    (resting,) = await gw.open_orders()
    assert (resting.client_id, resting.status, resting.venue_status) == (
        "rest-1",
        OrderStatus.ACKED,
        "New",
    )
    assert (resting.price, resting.size, resting.side) == (3_000_000, 10_000, Side.BUY)
    balances = await gw.balances()
    assert balances["USDT"].locked == 300 * ONE
    acct = rig.sim.exchange.accounts[KEY]
    assert {a: (b.free, b.locked) for a, b in balances.items()} == {
        a: (acct.free.get(a, 0), acct.locked.get(a, 0)) for a in balances
    }
    canceled = await gw.cancel("rest-1", SYMBOL)
    assert canceled is not None and canceled.status is OrderStatus.CANCELED
    assert canceled.venue_status == "Cancelled"
    assert await gw.open_orders() == []
    assert await gw.cancel("rest-1", SYMBOL) == canceled  # gone: its final state
    assert await gw.cancel("nope", SYMBOL) is None
    balances = await gw.balances()
    assert {a: (b.free, b.locked) for a, b in balances.items()} == {
        a: (v, 0) for a, v in rig.account().items()
    }


# -- faults --------------------------------------------------------------------------------


async def test_lost_reply_is_retried_by_client_id_and_followed(rig: Rig) -> None:
    gw = await rig.gateway()
    rig.sim.faults.inject(Fault.ORDER_TIMEOUT)
    top = asks(rig)[0]
    gw.submit(rig.order("t1", Side.BUY, top[0], 1000))
    status, reason = await rig.done("t1")
    assert status is OrderStatus.FILLED, reason
    assert gw.counters.retries == 1 and gw.counters.rejects == 0
    # Two requests reached the venue: the lost one, and the retry it refused as duplicate.
    assert rig.sim.order_api.rest_orders == 2 and rig.sim.exchange.requests == 2
    assert [(f.price, f.size) for f in rig.events.fills["t1"]] == [(top[0], 1000)]
    assert len([o for o in rig.sim.exchange.orders.values() if o.client_id == "t1"]) == 1


class NoRetry(BybitGateway):
    retry_budget = 0


async def test_lost_reply_without_retry_budget_leaves_it_to_query(rig: Rig) -> None:
    gw = await rig.gateway(cls=NoRetry)
    rig.sim.faults.inject(Fault.ORDER_TIMEOUT)
    top = asks(rig)[0]
    gw.submit(rig.order("t2", Side.BUY, top[0], 1000))
    await until(lambda: gw.counters.unknown == 1)
    await asyncio.sleep(0.1)
    assert "t2" not in rig.events.done  # never called rejected for want of an answer
    state = await gw.query("t2")
    assert state is not None and state.status is OrderStatus.FILLED
    assert [(f.price, f.size) for f in state.fills] == [(top[0], 1000)]


@pytest.mark.parametrize(
    ("fault", "seconds", "code", "banned"),
    [(Fault.ORDER_429, 1.5, "10006", False), (Fault.ORDER_418, 2.0, "403", True)],
)
async def test_rate_limits_reject_report_and_block(
    rig: Rig, fault: Fault, seconds: float, code: str, banned: bool
) -> None:
    gw = await rig.gateway()
    rig.sim.faults.inject(fault, seconds=seconds)
    top = asks(rig)[0]
    gw.submit(rig.order("r1", Side.BUY, top[0], 1000))
    status, reason = await rig.done("r1")
    assert status is OrderStatus.REJECTED and reason.startswith(f"{code}:")
    assert rig.limits == [("bybit", seconds, banned)]
    sent = rig.sim.order_api.rest_orders
    gw.submit(rig.order("r2", Side.BUY, top[0], 1000))
    status, reason = await rig.done("r2")
    assert status is OrderStatus.REJECTED and "waiting out" in reason
    assert rig.sim.order_api.rest_orders == sent  # refused here, no request made


@pytest.mark.parametrize("ws", [False, True], ids=["rest", "ws"])
async def test_exhausted_order_limit_pauses_sending_until_the_reset(rig: Rig, ws: bool) -> None:
    """X-Bapi-Limit-Status reaching 0 on an accepted order stops the next ones here (no
    request) and tells the rate gates how long, before the venue would answer 10006."""
    rig.sim.order_api.order_limit = 2
    gw = await rig.gateway(ws=ws)
    if ws:
        await until(lambda: gw.ws_ready)
    if rig.sim.exchange.now_ms() % 1000 > 700:  # two orders in one second's window
        await asyncio.sleep(0.35)
    far = bids(rig)[0][0] // 2  # an IOC buy far below: expires, nothing filled
    for cid in ("u1", "u2"):
        gw.submit(rig.order(cid, Side.BUY, far, 1000))
        assert (await rig.done(cid))[0] is OrderStatus.CANCELED
    assert gw.counters.usage_pauses == 1
    [(venue, wait, banned)] = rig.limits
    assert venue == "bybit" and not banned and 0 < wait <= 1.0
    sent = rig.sim.exchange.requests
    gw.submit(rig.order("u3", Side.BUY, far, 1000))
    status, reason = await rig.done("u3")
    assert status is OrderStatus.REJECTED and "waiting out" in reason
    assert rig.sim.exchange.requests == sent
    await asyncio.sleep(wait + 0.05)  # the window has turned: orders go out again
    gw.submit(rig.order("u4", Side.BUY, far, 1000))
    assert (await rig.done("u4"))[0] is OrderStatus.CANCELED


async def test_simulator_answers_10006_past_its_order_limit(rig: Rig) -> None:
    rig.sim.order_api.order_limit = 1
    gw = await rig.gateway()
    if rig.sim.exchange.now_ms() % 1000 > 700:
        await asyncio.sleep(0.35)
    far = bids(rig)[0][0] // 2
    gw.submit(rig.order("v1", Side.BUY, far, 1000))
    await rig.done("v1")
    # Bypass the gateway's own pause: the venue itself refuses the second in the window.
    gw._blocked_until_ns = 0
    gw.submit(rig.order("v2", Side.BUY, far, 1000))
    status, reason = await rig.done("v2")
    assert status is OrderStatus.REJECTED and reason.startswith("10006:")


async def test_late_fill_acks_first_and_fills_later(rig: Rig) -> None:
    gw = await rig.gateway()
    rig.sim.faults.inject(Fault.ORDER_LATE_FILL, seconds=0.3)
    top = asks(rig)[0]
    gw.submit(rig.order("l1", Side.BUY, top[0], 1000))
    await until(lambda: rig.events.kinds("l1") == ["ack"])
    assert gw._tracked["l1"].venue_order_id  # acked with the venue's id, not done
    status, _ = await rig.done("l1")
    assert status is OrderStatus.FILLED
    assert rig.events.kinds("l1") == ["ack", "fill", "done"]


async def test_partial_fate_fills_half(rig: Rig) -> None:
    gw = await rig.gateway()
    rig.sim.faults.inject(Fault.ORDER_PARTIAL)
    top = asks(rig)[0]
    size = min(top[1], 1000)
    gw.submit(rig.order("h1", Side.BUY, top[0], size))
    status, _ = await rig.done("h1")
    assert status is OrderStatus.CANCELED
    assert sum(f.size for f in rig.events.fills["h1"]) == size // 2


async def test_server_error_is_unknown_then_retried(rig: Rig) -> None:
    gw = await rig.gateway()
    rig.sim.faults.inject(Fault.REST_5XX, status=503)
    top = asks(rig)[0]
    gw.submit(rig.order("x1", Side.BUY, top[0], 1000))
    status, _ = await rig.done("x1")
    assert status is OrderStatus.FILLED
    assert gw.counters.retries == 1


async def test_server_error_without_budget_the_venue_never_saw_it(rig: Rig) -> None:
    gw = await rig.gateway(cls=NoRetry)
    rig.sim.faults.inject(Fault.REST_5XX, status=502)
    top = asks(rig)[0]
    gw.submit(rig.order("x2", Side.BUY, top[0], 1000))
    await until(lambda: gw.counters.unknown == 1)
    assert "x2" not in rig.events.done
    assert await gw.query("x2") is None


def test_malformed_replies_are_one_line_errors() -> None:
    inst = Instrument("bybit", SYMBOL, "BTC", "USDT", "0.01", "0.000001")
    gw = BybitGateway(
        "bybit",
        [inst],
        VenueCredentials(Secret(KEY, REF), Secret(SECRET, REF)),
        rest_url="http://127.0.0.1:1",
    )
    truncated = HttpReply(200, {}, b'{"retCode":0,"retMsg":"OK","result":{"orderId":"12')
    with pytest.raises(UnknownOutcome) as placing:
        gw._result("/v5/order/create", truncated, placing=True)
    with pytest.raises(GatewayError) as reading:
        gw._result("/v5/order/realtime", truncated, placing=False)
    assert not isinstance(reading.value, UnknownOutcome)
    no_code = HttpReply(200, {}, b'{"retMsg":"OK"}')
    with pytest.raises(GatewayError) as missing:
        gw._result("/v5/order/realtime", no_code, placing=False)
    item = {"symbol": SYMBOL, "orderStatus": "Filled", "side": "Buy"}  # no cumExecQty
    with pytest.raises(GatewayError) as partial:
        gw._state(item, "/v5/order/realtime")
    sign = HttpReply(
        200,
        {},
        orjson.dumps(
            {"retCode": 10004, "retMsg": f"error sign! origin_string[1{KEY}5000{{}}]", "time": 1}
        ),
    )
    with pytest.raises(GatewayError) as signed:
        gw._result("/v5/order/create", sign, placing=True)
    messages = [str(e.value) for e in (placing, reading, missing, partial, signed)]
    no_secret(*messages)
    assert KEY not in str(signed.value)
    assert all(len(m) < 200 for m in messages)


# -- WebSocket order entry -----------------------------------------------------------------


async def test_ws_order_entry_fills(rig: Rig) -> None:
    gw = await rig.gateway(ws=True)
    await until(lambda: gw.ws_ready)
    top = asks(rig)[0]
    gw.submit(rig.order("ws1", Side.BUY, top[0], 1000))
    status, _ = await rig.done("ws1")
    assert status is OrderStatus.FILLED
    assert (gw.counters.ws_sent, gw.counters.rest_sent) == (1, 0)
    assert rig.sim.order_api.ws_orders == 1 and rig.sim.order_api.rest_orders == 0
    assert [(f.price, f.size) for f in rig.events.fills["ws1"]] == [(top[0], 1000)]
    rig.sim.order_api.drop_ws()  # a cut socket comes back, logged in again
    await until(lambda: gw.ws_ready and rig.sim.order_api.ws_logins == 2)
    gw.submit(rig.order("ws1b", Side.BUY, top[0], 1000))
    assert (await rig.done("ws1b"))[0] is OrderStatus.FILLED
    assert gw.counters.ws_sent == 2


async def test_ws_login_refused_falls_back_to_rest(rig: Rig) -> None:
    gw = await rig.gateway(secret="wrong-secret", ws=True)
    await until(lambda: gw.ws_login_error != "")
    assert gw.ws_login_error.startswith("10004:")
    assert not gw.ws_ready and rig.sim.order_api.ws_logins == 0
    gw.submit(rig.order("ws2", Side.BUY, asks(rig)[0][0], 1000))
    status, reason = await rig.done("ws2")
    assert status is OrderStatus.REJECTED and reason.startswith("10004:")
    assert gw.counters.rest_sent == 1


async def test_ws_dropped_with_an_order_in_flight_ends_with_the_venue_truth(rig: Rig) -> None:
    gw = await rig.gateway(ws=True)
    await until(lambda: gw.ws_ready)
    rig.sim.faults.inject(Fault.ORDER_TIMEOUT)
    top = asks(rig)[0]
    gw.submit(rig.order("ws3", Side.BUY, top[0], 1000))
    status, _ = await rig.done("ws3")
    assert status is OrderStatus.FILLED
    # The REST retry carried the same client id, and the venue refused it as a duplicate.
    assert rig.sim.order_api.ws_orders == 1 and rig.sim.order_api.rest_orders == 1
    assert rig.sim.exchange.requests == 2 and gw.counters.rejects == 0
    assert [(f.price, f.size) for f in rig.events.fills["ws3"]] == [(top[0], 1000)]
    await until(lambda: gw.ws_ready)  # the socket came back and logged in again
    assert rig.sim.order_api.ws_logins == 2


async def test_ws_rate_limit_and_clock_skew(rig: Rig) -> None:
    gw = await rig.gateway(ws=True)
    await until(lambda: gw.ws_ready)
    rig.sim.faults.inject(Fault.ORDER_429, seconds=0.2)
    top = asks(rig)[0]
    gw.submit(rig.order("ws4", Side.BUY, top[0], 1000))
    status, reason = await rig.done("ws4")
    assert status is OrderStatus.REJECTED and reason.startswith("10006:")
    assert rig.limits == [("bybit", 0.2, False)]
    await asyncio.sleep(0.25)
    rig.sim.exchange.skew_ms = -8000
    gw.submit(rig.order("ws5", Side.BUY, top[0], 1000))
    status, reason = await rig.done("ws5")
    assert status is OrderStatus.REJECTED and reason.startswith("10002:")
    await until(lambda: abs(gw.offset_ms + 8000) < 1000)
    gw.submit(rig.order("ws6", Side.BUY, top[0], 1000))
    assert (await rig.done("ws6"))[0] is OrderStatus.FILLED
    assert gw.counters.ws_sent == 3


# -- linear (USDT perpetual) ---------------------------------------------------------------


async def test_linear_fills_positions_and_fees_in_usdt() -> None:
    async with BybitSim([SYMBOL], category="linear", seed=4, interval_s=0.01) as sim:
        sim.pause()
        sim.exchange.add_account(KEY, SECRET, balances={"USDT": "10000"})
        inst = Instrument("bybit", SYMBOL, "BTC", "USDT", "0.10", "0.001")
        events = Recorder()
        gw = BybitGateway(
            "bybit",
            [inst],
            VenueCredentials(Secret(KEY, REF), Secret(SECRET, REF)),
            rest_url=sim.rest_url,
            timeout_s=1.0,
            category="linear",
        )
        gw.set_listener(events)
        async with gw:
            book = sim.sources[SYMBOL].book
            top = book.levels(ASK)[0]
            size = min(top[1], 20)
            gw.submit(Order("lin1", "arb", inst, Side.BUY, top[0], size))
            await until(lambda: "lin1" in events.done)
            assert events.done["lin1"][0] is OrderStatus.FILLED
            (fill,) = events.fills["lin1"]
            notional = top[0] * size * ONE // 10 // 1000  # 0.10 tick x 0.001 lot
            assert (fill.price, fill.size, fill.fee_asset) == (top[0], size, "USDT")
            # 5.5 bps of the notional, rounded up to 1e-8 USDT.
            fee = (Decimal(notional) * Decimal("0.00055") / 10**10).to_integral_value(ROUND_CEILING)
            assert fill.fee == int(fee) * 10**10
            # One price: avgPrice is exact, the entry value the notional to the atom; the
            # bound is 8 places' worth of the position plus an atom.
            base = size * ONE // 1000
            error = -(-base // 10**8) + 1
            assert await gw.positions() == {SYMBOL: Position(size, notional, error)}
            bid = book.levels(BID)[0]
            gw.submit(Order("lin2", "arb", inst, Side.SELL, bid[0], size + bid[1]))
            await until(lambda: "lin2" in events.done)
            # An IOC remainder on a contract is "Cancelled", its executed qty kept.
            assert events.done["lin2"] == (OrderStatus.CANCELED, "Cancelled")
            left = size - bid[1]
            assert sizes(await gw.positions()) == ({SYMBOL: left} if left else {})
            assert sim.exchange.accounts[KEY].positions[SYMBOL] == left
            # The sell realized against the entry price; what is left keeps its own.
            closed = min(size, bid[1])
            realized = (bid[0] - top[0]) * closed * ONE // 10 // 1000
            (sold,) = events.fills["lin2"]
            wallet = (await gw.balances())["USDT"].total
            assert wallet == 10_000 * ONE + realized - fill.fee - sold.fee
            if left:
                entry = top[0] if left > 0 else bid[0]
                pos = (await gw.positions())[SYMBOL]
                assert pos.entry_value == entry * left * ONE // 10 // 1000


def sizes(positions: dict[str, Position]) -> dict[str, int]:
    return {symbol: p.size for symbol, p in positions.items()}


class CannedPositions(BybitGateway):
    """A linear gateway whose position list is the reply given (the parsing under test)."""

    item: dict[str, Any]

    async def _call(
        self, method: str, path: str, params: Mapping[str, str], *, placing: bool = False
    ) -> dict[str, Any]:
        return {"list": [self.item], "nextPageCursor": ""}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"avgPrice": ""}, "bybit /v5/position/list: avgPrice '' is not a decimal"),
        ({"avgPrice": "6e4x"}, "bybit /v5/position/list: avgPrice '6e4x' is not a decimal"),
        ({}, "bybit /v5/position/list: field 'avgPrice' missing or not text"),
    ],
)
async def test_linear_position_without_a_usable_avg_price_is_one_line(
    item: dict[str, Any], message: str
) -> None:
    inst = Instrument("bybit", SYMBOL, "BTC", "USDT", "0.10", "0.001")
    creds = VenueCredentials(Secret(KEY, REF), Secret(SECRET, REF))
    gw = CannedPositions("bybit", [inst], creds, rest_url="http://127.0.0.1:9", category="linear")
    gw.item = {"symbol": SYMBOL, "side": "Sell", "size": "0.002", **item}
    with pytest.raises(GatewayError) as err:
        await gw.positions()
    assert str(err.value) == message
    gw.item = {"symbol": SYMBOL, "side": "Sell", "size": "0.002", "avgPrice": "60000.05"}
    assert await gw.positions() == {
        SYMBOL: Position(-2, -120_000_100_000_000_000_000, 2 * 10**13 + 1)
    }


async def test_sim_trade_socket_protocol(rig: Rig) -> None:
    """The /v5/trade socket as the guideline has it: auth first, one reply per frame."""
    secret = Secret(SECRET, REF)
    async with aiohttp.ClientSession() as session, session.ws_connect(rig.sim.trade_ws_url) as ws:

        async def ask(frame: dict[str, Any]) -> dict[str, Any]:
            await ws.send_str(orjson.dumps(frame).decode())
            reply: dict[str, Any] = orjson.loads(await ws.receive_str(timeout=2))
            return reply

        now = rig.sim.exchange.now_ms()
        header = {"X-BAPI-TIMESTAMP": str(now), "X-BAPI-RECV-WINDOW": "5000"}
        order = {"category": "spot", "symbol": SYMBOL, "side": "Buy", "orderType": "Limit"}
        order |= {"qty": "0.010000", "price": "1000.00", "timeInForce": "GTC"}
        create = {"reqId": "r1", "header": header, "op": "order.create", "args": [order]}
        assert (await ask(create))["retCode"] == 10007  # not logged in
        pong = await ask({"op": "ping"})
        assert (pong["op"], pong["retCode"]) == ("pong", 0)
        expired = signing.bybit_ws_auth_args(KEY, secret, now - 1)
        assert (await ask({"op": "auth", "args": expired}))["retCode"] == 10001
        forged = signing.bybit_ws_auth_args(KEY, Secret("nope", REF), now + 5000)
        assert (await ask({"op": "auth", "args": forged}))["retCode"] == 10004
        good = signing.bybit_ws_auth_args(KEY, secret, now + 5000)
        assert await ask({"op": "auth", "args": good}) == {
            "retCode": 0,
            "retMsg": "OK",
            "op": "auth",
            "connId": (await ask({"op": "ping"}))["connId"],
        }
        assert (await ask({"op": "auth", "args": good}))["retCode"] == 20001
        placed = await ask(create | {"reqId": "r2"})
        assert (placed["reqId"], placed["retCode"], placed["op"]) == ("r2", 0, "order.create")
        assert placed["data"]["orderId"].isdigit() and placed["header"]["X-Bapi-Limit"] == "20"
        assert (await ask(create | {"reqId": "r2"}))["retCode"] == 20006
        stale = {"X-BAPI-TIMESTAMP": str(now - 6000), "X-BAPI-RECV-WINDOW": "5000"}
        assert (await ask(create | {"reqId": "r3", "header": stale}))["retCode"] == 10002
        assert (await ask(create | {"reqId": "r4", "op": "order.nope"}))["retCode"] == 10404


def test_unreadable_socket_frames_are_counted_not_raised() -> None:
    inst = Instrument("bybit", SYMBOL, "BTC", "USDT", "0.01", "0.000001")
    gw = BybitGateway(
        "bybit",
        [inst],
        VenueCredentials(Secret(KEY, REF), Secret(SECRET, REF)),
        rest_url="http://127.0.0.1:1",
    )
    gw._ws_message(b'{"op":"order.create","retCode":0,"da')
    gw._ws_message(b'{"op":"order.create","reqId":"someone-else","retCode":0}')
    gw._ws_message(b"[1, 2]")
    assert gw.ws_malformed == 3
    gw._ws_message(b'{"op":"auth","retCode":10004,"retMsg":"Invalid sign\\nline two"}')
    assert gw.ws_login_error == "10004: Invalid sign line two"
    assert not gw.ws_ready


@pytest.mark.parametrize(("key", "secret"), [("", SECRET), ("bad key\n", SECRET), (KEY, "")])
def test_malformed_credentials_are_a_one_line_error(key: str, secret: str) -> None:
    inst = Instrument("bybit", SYMBOL, "BTC", "USDT", "0.01", "0.000001")
    creds = VenueCredentials(Secret(key, REF), Secret(secret, REF))
    with pytest.raises(ValueError) as err:
        BybitGateway("bybit", [inst], creds, rest_url="http://127.0.0.1:1")
    no_secret(str(err.value))
    assert "bad key" not in str(err.value)


async def test_injected_reject_and_ws_ip_ban(rig: Rig) -> None:
    gw = await rig.gateway(ws=True)
    await until(lambda: gw.ws_ready)
    top = asks(rig)[0]
    rig.sim.faults.inject(Fault.ORDER_REJECT)
    gw.submit(rig.order("j1", Side.BUY, top[0], 1000))
    status, reason = await rig.done("j1")
    assert status is OrderStatus.REJECTED and reason.startswith("170210:")
    rig.sim.faults.inject(Fault.ORDER_418, seconds=0.3)
    gw.submit(rig.order("j2", Side.BUY, top[0], 1000))
    status, reason = await rig.done("j2")
    assert status is OrderStatus.REJECTED and reason.startswith("10009:")
    assert rig.limits == [("bybit", 0.3, True)]
    gw.submit(rig.order("j3", Side.BUY, top[0], 1000))  # within the ban: refused here
    assert (await rig.done("j3"))[0] is OrderStatus.REJECTED
    assert rig.sim.order_api.ws_orders == 2 and rig.sim.order_api.rest_orders == 0
    await asyncio.sleep(0.3)
    gw.submit(rig.order("j4", Side.BUY, top[0], 1000))
    assert (await rig.done("j4"))[0] is OrderStatus.FILLED
    assert gw.counters.ws_sent == 3
