"""OKX v5 order gateway against the OKX simulator's order entry, over loopback.

Each test runs a real ``OkxSim`` (its book frozen, so expected fills can be read off the
true book), a real ``OkxGateway`` with its aiohttp session and, for the WebSocket tests,
its picows connection to ``/ws/v5/private``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways.base import (
    Balance,
    GatewayError,
    UnknownOutcome,
    VenueCredentials,
)
from arbengine.gateways.okx import OkxGateway
from arbengine.orders import ATOMS, Fill, Order, OrderStatus, Side, TimeInForce
from arbengine.venues.signing import okx_headers, okx_ws_login_args
from arbengine.venues.sim import OkxSim
from arbengine.venues.sim.exchange import SimAccount
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.model import ASK, BID
from tests.waiting import until

KEY, SECRET, PHRASE = "okx-test-key", "0KX-S3CRET-for-tests", "pass-phrase-1"
SYMBOL = "BTC-USDT"
INST = Instrument("okx", SYMBOL, "BTC", "USDT", "0.1", "0.00000001", min_size="0.00001")
START = {"USDT": "100000", "BTC": "2"}
FEE_BPS = 10  # OKX spot taker, as the simulator charges it


def secret(value: str, name: str) -> Secret:
    return Secret(value, CredentialRef(source="env", name=name))


def credentials(api_secret: str = SECRET) -> VenueCredentials:
    return VenueCredentials(
        secret(KEY, "OKX_KEY"), secret(api_secret, "OKX_SECRET"), secret(PHRASE, "OKX_PHRASE")
    )


@dataclass
class Events:
    """What the gateway told the executor, in order."""

    log: list[tuple[str, str]] = field(default_factory=list)
    fills: dict[str, list[Fill]] = field(default_factory=dict)
    done: dict[str, tuple[OrderStatus, str]] = field(default_factory=dict)

    def on_ack(self, order: Order, ts_ns: int) -> None:
        self.log.append(("ack", order.client_id))

    def on_fill(self, order: Order, fill: Fill) -> None:
        self.log.append(("fill", order.client_id))
        self.fills.setdefault(order.client_id, []).append(fill)

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        self.log.append(("done", order.client_id))
        self.done[order.client_id] = (status, reason)


@dataclass
class Rig:
    sim: OkxSim
    gw: OkxGateway
    events: Events
    account: SimAccount
    rate_limits: list[tuple[str, float, bool]]

    async def finished(self, cid: str, timeout: float = 4.0) -> tuple[OrderStatus, str]:
        await until(lambda: cid in self.events.done, timeout, lambda: self.events.log)
        return self.events.done[cid]

    def asks(self) -> list[tuple[int, int]]:
        return self.sim.sources[SYMBOL].book.levels(ASK)

    def bids(self) -> list[tuple[int, int]]:
        return self.sim.sources[SYMBOL].book.levels(BID)


class _NoRetry(OkxGateway):
    retry_budget = 0


@asynccontextmanager
async def rig(
    *,
    ws: bool = False,
    api_secret: str = SECRET,
    no_retry: bool = False,
    timeout_s: float = 0.5,
    recv_window_ms: int = 300,
) -> AsyncIterator[Rig]:
    async with OkxSim([SYMBOL], seed=11, interval_s=0.05) as sim:
        sim.pause()  # a still book: the expected fills are what it shows
        account = sim.exchange.add_account(KEY, SECRET, PHRASE, START)
        limits: list[tuple[str, float, bool]] = []
        cls = _NoRetry if no_retry else OkxGateway
        gw = cls(
            "okx",
            [INST],
            credentials(api_secret),
            rest_url=sim.rest_url,
            ws_url=sim.private_ws_url if ws else None,
            timeout_s=timeout_s,
            recv_window_ms=recv_window_ms,
            on_rate_limit=lambda v, s, b: limits.append((v, s, b)),
        )
        events = Events()
        gw.set_listener(events)
        await gw.start()
        try:
            yield Rig(sim, gw, events, account, limits)
        finally:
            await gw.close()


def order(cid: str, side: Side, price: int, size: int, tif: TimeInForce = TimeInForce.IOC) -> Order:
    return Order(cid, "arb-1", INST, side, price, size, tif)


def fee_atoms(received_atoms: int) -> int:
    """10 bps of what was received, rounded up to 10**-8 (the simulator's rule, restated)."""
    raw = -((-received_atoms * FEE_BPS) // 10_000)
    step = 10**10
    return -((-raw) // step) * step


def base_atoms(lots: int) -> int:
    return lots * 10**10  # one lot is 10**-8 BTC


def quote_atoms(ticks: int, lots: int) -> int:
    return ticks * lots * 10**9  # 0.1 x 10**-8 USDT = 10**-9 = 10**9 atoms


def no_secret(text: str) -> None:
    assert SECRET not in text and PHRASE not in text and "\n" not in text


# -- authentication and clock --------------------------------------------------------------


async def test_wrong_secret_is_refused_by_the_venue_and_reported_rejected() -> None:
    async with rig(api_secret="not-the-secret") as r:
        ((p, _),) = r.asks()[:1]
        r.gw.submit(order("bad1", Side.BUY, p, 100_000))
        status, reason = await r.finished("bad1")
        assert status is OrderStatus.REJECTED
        assert reason.startswith("50113:")
        no_secret(reason)
        assert r.sim.exchange.requests == 0  # refused before any order was looked at
        assert r.gw.counters.reject_codes == {"50113": 1}


@pytest.mark.parametrize(
    ("skew_ms", "code", "ws"),
    [
        (2_000, "50037", False),  # past the order's expTime
        (60_000, "50102", False),  # beyond OKX's 30 s for the signed timestamp
        (2_000, "50037", True),  # the WebSocket order's expTime
    ],
)
async def test_clock_skew_rejects_resyncs_and_the_next_order_goes_through(
    skew_ms: int, code: str, ws: bool
) -> None:
    async with rig(ws=ws) as r:
        if ws:
            await until(lambda: r.gw.ws_ready, 3.0, lambda: r.gw.ws_error)
        r.sim.exchange.skew_ms = skew_ms
        p = r.asks()[0][0]
        r.gw.submit(order("skew1", Side.BUY, p, 1000))
        status, reason = await r.finished("skew1")
        assert (status, reason.split(":")[0]) == (OrderStatus.REJECTED, code)
        await until(lambda: abs(r.gw.offset_ms - skew_ms) < 200, 2.0, lambda: r.gw.offset_ms)
        assert r.gw.counters.clock_resyncs == 1
        r.gw.submit(order("skew2", Side.BUY, p, 1000))
        assert (await r.finished("skew2"))[0] is OrderStatus.FILLED
        assert r.gw.counters.ws_sent == (2 if ws else 0)


# -- REST order entry ----------------------------------------------------------------------


async def test_ioc_crossing_the_book_fills_exactly_and_moves_the_balances() -> None:
    async with rig() as r:
        (p1, s1), (p2, s2) = r.asks()[:2]
        size = s1 + s2 // 2 + 1
        r.gw.submit(order("ioc1", Side.BUY, p2, size))
        assert (await r.finished("ioc1"))[0] is OrderStatus.FILLED
        fills = r.events.fills["ioc1"]
        assert [(f.price, f.size) for f in fills] == [(p1, s1), (p2, size - s1)]
        assert [f.fee for f in fills] == [fee_atoms(base_atoms(f.size)) for f in fills]
        assert {f.fee_asset for f in fills} == {"BTC"}  # spot: the asset received
        venue = r.sim.exchange.get(KEY, client_id="ioc1")
        assert venue is not None
        assert [f.trade_id for f in fills] == [str(v.trade_id) for v in venue.fills]
        assert r.events.log[0] == ("ack", "ioc1") and r.events.log[-1] == ("done", "ioc1")
        btc = 2 * ATOMS + sum(base_atoms(f.size) - f.fee for f in fills)
        usdt = 100_000 * ATOMS - sum(quote_atoms(f.price, f.size) for f in fills)
        assert (r.account.free["BTC"], r.account.free["USDT"]) == (btc, usdt)
        assert await r.gw.balances() == {
            "BTC": Balance("BTC", btc, 0),
            "USDT": Balance("USDT", usdt, 0),
        }


async def test_ioc_sell_pays_its_fee_in_quote() -> None:
    async with rig() as r:
        p1, s1 = r.bids()[0]
        size = min(s1, 50_000)
        r.gw.submit(order("sell1", Side.SELL, p1, size))
        assert (await r.finished("sell1"))[0] is OrderStatus.FILLED
        (f,) = r.events.fills["sell1"]
        assert (f.price, f.size, f.fee_asset) == (p1, size, "USDT")
        assert f.fee == fee_atoms(quote_atoms(p1, size))
        assert r.account.free["USDT"] == 100_000 * ATOMS + quote_atoms(p1, size) - f.fee


async def test_ioc_partial_is_canceled_with_its_fills_and_fok_with_nothing() -> None:
    async with rig() as r:
        p1, s1 = r.asks()[0]
        r.gw.submit(order("part1", Side.BUY, p1, s1 + 7))
        r.gw.submit(order("fok1", Side.BUY, p1, s1 + 7, TimeInForce.FOK))
        assert (await r.finished("part1"))[0] is OrderStatus.CANCELED
        assert [(f.price, f.size) for f in r.events.fills["part1"]] == [(p1, s1)]
        assert (await r.finished("fok1"))[0] is OrderStatus.CANCELED
        assert "fok1" not in r.events.fills
        assert ("ack", "fok1") in r.events.log  # the venue took it, then expired it


async def test_invalid_size_and_duplicate_client_id_are_rejected() -> None:
    async with rig() as r:
        p1 = r.asks()[0][0]
        r.gw.submit(order("tiny1", Side.BUY, p1, 1))  # 1e-8 BTC: under OKX's minSz
        status, reason = await r.finished("tiny1")
        assert (status, reason.split(":")[0]) == (OrderStatus.REJECTED, "51020")
        r.sim.exchange.rest(KEY, SYMBOL, "BUY", "1000", "0.001", "dup1")
        r.gw.submit(order("dup1", Side.BUY, p1, 1000))
        status, reason = await r.finished("dup1")
        assert (status, reason.split(":")[0]) == (OrderStatus.REJECTED, "51016")


async def test_query_open_orders_cancel_and_balances() -> None:
    async with rig() as r:
        p1, s1 = r.asks()[0]
        r.gw.submit(order("q1", Side.BUY, p1, min(s1, 1000)))
        await r.finished("q1")
        got = await r.gw.query("q1")
        assert got is not None and got.status is OrderStatus.FILLED
        assert got.filled == min(s1, 1000) and [f.size for f in got.fills] == [got.filled]
        assert await r.gw.query("never-sent") is None
        r.sim.exchange.rest(KEY, SYMBOL, "BUY", "1000", "0.5", "rest1")
        (open_order,) = await r.gw.open_orders()
        assert (open_order.client_id, open_order.status) == ("rest1", OrderStatus.ACKED)
        assert (open_order.price, open_order.size) == (10_000, 50_000_000)
        assert (await r.gw.balances())["USDT"].locked == 500 * ATOMS
        after = await r.gw.cancel("rest1", SYMBOL)
        assert after is not None and after.status is OrderStatus.CANCELED
        assert await r.gw.open_orders() == []
        assert await r.gw.cancel("rest1", SYMBOL) is not None  # finished: its state
        assert await r.gw.cancel("nope", SYMBOL) is None
        balances = await r.gw.balances()
        assert {a: (b.free, b.locked) for a, b in balances.items()} == {
            a: (r.account.free.get(a, 0), r.account.locked.get(a, 0))
            for a in set(r.account.free) | set(r.account.locked)
        }


# -- faults --------------------------------------------------------------------------------


async def test_lost_reply_is_resolved_by_client_id_never_rejected() -> None:
    async with rig() as r:
        p1, s1 = r.asks()[0]
        r.sim.faults.inject(Fault.ORDER_TIMEOUT)
        r.gw.submit(order("lost1", Side.BUY, p1, min(s1, 2000)))
        assert (await r.finished("lost1"))[0] is OrderStatus.FILLED
        venue = r.sim.exchange.get(KEY, client_id="lost1")
        assert venue is not None and venue.status == "FILLED"
        assert [(f.trade_id, f.size) for f in r.events.fills["lost1"]] == [
            (str(v.trade_id), v.size) for v in venue.fills
        ]
        assert r.sim.orders.held == 1 and r.sim.exchange.requests == 1  # placed once
        assert r.gw.counters.retries == 1


async def test_lost_reply_without_retries_leaves_it_to_query() -> None:
    async with rig(no_retry=True) as r:
        p1, s1 = r.asks()[0]
        r.sim.faults.inject(Fault.ORDER_TIMEOUT)
        r.gw.submit(order("lost2", Side.BUY, p1, min(s1, 2000)))
        await until(lambda: r.gw.counters.unknown == 1, 3.0)
        assert "lost2" not in r.events.done
        got = await r.gw.query("lost2")
        assert got is not None and got.status is OrderStatus.FILLED
        assert got.filled == min(s1, 2000) and sum(f.size for f in got.fills) == got.filled


@pytest.mark.parametrize(
    ("fault", "seconds", "banned"), [(Fault.ORDER_429, 1.0, False), (Fault.ORDER_418, 2.0, True)]
)
async def test_rate_limit_rejects_reports_the_wait_and_blocks_locally(
    fault: Fault, seconds: float, banned: bool
) -> None:
    async with rig() as r:
        p1 = r.asks()[0][0]
        r.sim.faults.inject(fault, seconds=seconds)
        r.gw.submit(order("rl1", Side.BUY, p1, 1000))
        status, reason = await r.finished("rl1")
        assert status is OrderStatus.REJECTED and "HTTP" in reason
        assert r.rate_limits == [("okx", seconds, banned)]
        sent = r.sim.stats.rest_requests
        r.gw.submit(order("rl2", Side.BUY, p1, 1000))
        status, reason = await r.finished("rl2")
        assert status is OrderStatus.REJECTED and "waiting out" in reason
        assert r.sim.stats.rest_requests == sent  # refused here, never sent
        assert r.sim.exchange.requests == 0  # and the venue placed nothing


async def test_late_fill_acks_first_then_fills() -> None:
    async with rig() as r:
        p1, s1 = r.asks()[0]
        r.sim.faults.inject(Fault.ORDER_LATE_FILL, seconds=0.3)
        r.gw.submit(order("late1", Side.BUY, p1, min(s1, 3000)))
        await until(lambda: ("ack", "late1") in r.events.log, 2.0)
        assert "late1" not in r.events.done and "late1" not in r.events.fills
        assert (await r.finished("late1"))[0] is OrderStatus.FILLED
        assert r.events.log.index(("ack", "late1")) < r.events.log.index(("fill", "late1"))
        assert sum(f.size for f in r.events.fills["late1"]) == min(s1, 3000)


async def test_partial_fault_fills_half_and_cancels_the_rest() -> None:
    async with rig() as r:
        p1, s1 = r.asks()[0]
        size = min(s1, 3000)
        r.sim.faults.inject(Fault.ORDER_PARTIAL)
        r.gw.submit(order("half1", Side.BUY, p1, size))
        assert (await r.finished("half1"))[0] is OrderStatus.CANCELED
        assert sum(f.size for f in r.events.fills["half1"]) == max(1, size // 2)


async def test_5xx_is_unknown_then_resolved_by_client_id() -> None:
    async with rig() as r:
        p1, s1 = r.asks()[0]
        r.sim.faults.inject(Fault.REST_5XX, status=503)
        r.gw.submit(order("x1", Side.BUY, p1, min(s1, 1000)))
        assert (await r.finished("x1"))[0] is OrderStatus.FILLED
        assert r.gw.counters.retries == 1 and r.sim.exchange.requests == 1
        r.sim.faults.inject(Fault.REST_5XX, status=502)
        with pytest.raises(UnknownOutcome) as info:
            await r.gw.balances()
        no_secret(str(info.value))


async def test_malformed_and_truncated_replies_are_one_line_errors() -> None:
    """A stand-in venue on loopback that answers with broken bodies (the simulator only
    ever sends well-formed ones)."""
    replies = {
        "/api/v5/public/time": b'{"code":"0","msg":"","data":[{"ts":"17',  # truncated
        "/api/v5/account/balance": b'{"code":"0","msg":"","data":[{"details":[{"ccy":"BTC"}]}]}',
        "/api/v5/trade/order": b'{"code":"0","data":[{"state":"weird"}]}',
    }
    time_ok = False

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/api/v5/public/time" and time_ok:
            return web.json_response({"code": "0", "msg": "", "data": [{"ts": "1"}]})
        return web.Response(body=replies[request.path], content_type="application/json")

    app = web.Application()
    for path in replies:
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    gw = OkxGateway(
        "okx", [INST], credentials(), rest_url=f"http://127.0.0.1:{port}", timeout_s=0.5
    )
    events = Events()
    gw.set_listener(events)
    try:
        with pytest.raises(GatewayError) as info:
            await gw.start()  # the time sync meets the truncated body
        assert "malformed reply" in str(info.value)
        no_secret(str(info.value))
        time_ok = True
        await gw.start()
        with pytest.raises(GatewayError) as info:
            await gw.balances()
        assert "availBal" in str(info.value)
        no_secret(str(info.value))
        with pytest.raises(GatewayError) as info:
            await gw.query("c1")
        no_secret(str(info.value))
        # An unreadable placement reply is an unknown outcome, never a reject.
        gw.submit(order("m1", Side.BUY, 600_000, 1000))
        await until(lambda: gw.counters.unknown == 1, 3.0, lambda: events.log)
        assert events.done == {} and gw.counters.retries == gw.retry_budget
    finally:
        await gw.close()
        await runner.cleanup()


async def test_a_passphrase_is_required() -> None:
    creds = VenueCredentials(secret(KEY, "K"), secret(SECRET, "S"))
    with pytest.raises(ValueError, match="passphrase"):
        OkxGateway("okx", [INST], creds, rest_url="http://127.0.0.1:9")


async def test_a_request_delayed_past_its_exptime_is_never_placed_twice() -> None:
    async with rig() as r:
        p1, s1 = r.asks()[0]
        # The first request reaches the venue after the client gave up and re-sent: its
        # expTime has passed by then, so only the re-sent one is placed.
        r.sim.faults.inject(Fault.REST_DELAY, seconds=0.8)
        r.gw.submit(order("slow1", Side.BUY, p1, min(s1, 1000)))
        assert (await r.finished("slow1"))[0] is OrderStatus.FILLED
        await until(lambda: r.sim.orders.expired == 1, 2.0)  # woke at 0.8 s: refused
        assert r.sim.exchange.requests == 1
        assert r.gw.counters.retries == 1
        assert sum(f.size for f in r.events.fills["slow1"]) == min(s1, 1000)


# -- WebSocket order entry -----------------------------------------------------------------


async def test_ws_order_entry_fills() -> None:
    async with rig(ws=True) as r:
        await until(lambda: r.gw.ws_ready, 3.0, lambda: r.gw.ws_error)
        p1, s1 = r.asks()[0]
        r.gw.submit(order("ws1", Side.BUY, p1, min(s1, 1500)))
        assert (await r.finished("ws1"))[0] is OrderStatus.FILLED
        assert r.gw.counters.ws_sent == 1 and r.gw.counters.rest_sent == 0
        assert sum(f.size for f in r.events.fills["ws1"]) == min(s1, 1500)
        r.gw.submit(order("ws2", Side.BUY, p1, 1))  # refused on the socket: same codes
        status, reason = await r.finished("ws2")
        assert (status, reason.split(":")[0]) == (OrderStatus.REJECTED, "51020")


async def test_ws_login_with_a_wrong_secret_is_refused_and_rest_takes_over() -> None:
    async with rig(ws=True, api_secret="wrong-one") as r:
        await until(lambda: r.gw.ws_error.startswith("60009"), 3.0)
        assert not r.gw.ws_ready
        no_secret(r.gw.ws_error)
        r.gw.submit(order("wsbad", Side.BUY, r.asks()[0][0], 1000))
        status, reason = await r.finished("wsbad")
        assert (status, reason.split(":")[0]) == (OrderStatus.REJECTED, "50113")


async def test_ws_drop_with_an_order_in_flight_ends_with_the_venue_truth() -> None:
    async with rig(ws=True) as r:
        await until(lambda: r.gw.ws_ready, 3.0, lambda: r.gw.ws_error)
        p1, s1 = r.asks()[0]
        r.sim.faults.inject(Fault.ORDER_TIMEOUT)  # executed, then the socket is cut
        r.gw.submit(order("wsdrop", Side.BUY, p1, min(s1, 2500)))
        assert (await r.finished("wsdrop"))[0] is OrderStatus.FILLED
        venue = r.sim.exchange.get(KEY, client_id="wsdrop")
        assert venue is not None and venue.status == "FILLED"
        assert [f.trade_id for f in r.events.fills["wsdrop"]] == [
            str(f.trade_id) for f in venue.fills
        ]
        assert r.sim.exchange.requests == 1 and r.gw.counters.ws_sent == 1


# -- the simulator's wire, as OKX documents it ---------------------------------------------


async def test_simulator_auth_errors_and_reply_shapes() -> None:
    async with OkxSim([SYMBOL], seed=3) as sim, aiohttp.ClientSession() as http:
        sim.pause()
        sim.exchange.add_account(KEY, SECRET, PHRASE, START)
        ask = sim.true_book(SYMBOL).best_ask
        assert ask is not None

        async def call(
            method: str,
            path: str,
            body: str = "",
            *,
            key: str = KEY,
            phrase: str = PHRASE,
            drop: str = "",
            extra: dict[str, str] | None = None,
        ) -> tuple[int, dict[str, Any]]:
            headers = okx_headers(
                key,
                secret(SECRET, "S"),
                secret(phrase, "P"),
                sim.exchange.now_ms(),
                method,
                path,
                body,
            )
            headers.pop(drop, None)
            headers |= extra or {}
            async with http.request(
                method, sim.rest_url + path, data=body or None, headers=headers
            ) as resp:
                return resp.status, orjson.loads(await resp.read())

        place = orjson.dumps(
            {
                "instId": SYMBOL,
                "tdMode": "cash",
                "clOrdId": "raw1",
                "side": "buy",
                "ordType": "ioc",
                "px": ask[0],
                "sz": "0.0001",
            }
        ).decode()
        assert await call("GET", "/api/v5/account/balance", key="nobody") == (
            401,
            {"code": "50111", "msg": "Invalid OK-ACCESS-KEY.", "data": []},
        )
        status, reply = await call("GET", "/api/v5/account/balance", phrase="wrong")
        assert (status, reply["code"]) == (401, "50105")
        status, reply = await call("GET", "/api/v5/account/balance", drop="OK-ACCESS-SIGN")
        assert (status, reply["code"]) == (401, "50106")
        past = {"expTime": str(sim.exchange.now_ms() - 1)}
        status, reply = await call("POST", "/api/v5/trade/order", place, extra=past)
        assert (status, reply["code"]) == (200, "50037")
        status, reply = await call("POST", "/api/v5/trade/order", place)
        assert status == 200 and reply["code"] == "0"
        assert set(reply) == {"code", "msg", "data", "inTime", "outTime"}
        (item,) = reply["data"]
        assert set(item) == {"clOrdId", "ordId", "tag", "ts", "sCode", "sMsg", "subCode"}
        assert (item["clOrdId"], item["sCode"]) == ("raw1", "0")
        status, reply = await call("POST", "/api/v5/trade/order", place)  # same clOrdId
        assert (status, reply["code"], reply["data"][0]["sCode"]) == (200, "1", "51016")
        status, reply = await call("GET", "/api/v5/trade/order?instId=BTC-USDT&clOrdId=raw1")
        (o,) = reply["data"]
        assert (o["state"], o["accFillSz"], o["feeCcy"]) == ("filled", "0.0001", "BTC")
        assert o["fee"].startswith("-")  # a charge is negative on OKX
        status, reply = await call("GET", "/api/v5/trade/order?instId=BTC-USDT&clOrdId=zz")
        assert (status, reply) == (
            200,
            {"code": "51603", "msg": "Order does not exist.", "data": []},
        )
        path = f"/api/v5/trade/fills?instType=SPOT&instId=BTC-USDT&ordId={o['ordId']}"
        status, reply = await call("GET", path)
        assert [(f["fillSz"], f["ordId"]) for f in reply["data"]] == [("0.0001", o["ordId"])]

        async with http.ws_connect(sim.private_ws_url) as ws:
            await ws.send_str("ping")
            assert await ws.receive_str() == "pong"
            await ws.send_str('{"id":"1","op":"order","args":[{}]}')
            reply = orjson.loads(await ws.receive_str())
            assert (reply["event"], reply["code"]) == ("error", "60011")
            login = okx_ws_login_args(
                KEY, secret(SECRET, "S"), secret(PHRASE, "P"), sim.exchange.now_ms() // 1000
            )
            await ws.send_str(orjson.dumps({"op": "login", "args": [login]}).decode())
            reply = orjson.loads(await ws.receive_str())
            assert (reply["event"], reply["code"]) == ("login", "0")
