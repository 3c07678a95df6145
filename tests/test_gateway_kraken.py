"""KrakenGateway against the simulated Kraken's REST order API over loopback."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Literal

import aiohttp
import orjson
import pytest
from aiohttp import web

from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways.base import GatewayError, VenueCredentials
from arbengine.gateways.kraken import KrakenGateway, kraken_asset, kraken_cl_ord_id
from arbengine.orders import Order, OrderStatus, Side, TimeInForce
from arbengine.venues.signing import kraken_headers
from arbengine.venues.sim.exchange import ATOMS, SimOrder
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.kraken import KrakenSim
from arbengine.venues.sim.model import ASK, BID
from tests.gateway_rig import Recorder, fee_up, walk
from tests.waiting import until

KEY = "kraken-sim-key"
SECRET = base64.b64encode(bytes(range(64))).decode()
OTHER_SECRET = base64.b64encode(bytes(range(1, 65))).decode()
SYMBOL = "BTC/USD"
INST = Instrument(
    "kraken",
    SYMBOL,
    "BTC",
    "USD",
    tick="0.1",
    lot="0.00000001",
    min_size="0.00005",
    min_notional="0.5",
)
START = {"USD": "100000", "BTC": "2"}
FEE_BPS = 40


def secret(value: str) -> Secret:
    return Secret(value, CredentialRef(source="env", name="KRAKEN_TEST"))


def creds(api_secret: str = SECRET) -> VenueCredentials:
    return VenueCredentials(secret(KEY), secret(api_secret))


class Rig:
    def __init__(self, sim: KrakenSim, gw: KrakenGateway, rec: Recorder) -> None:
        self.sim, self.gw, self.rec = sim, gw, rec
        self.limits: list[tuple[str, float, bool]] = []
        self.n = 0

    def levels(self, side: Literal["bid", "ask"]) -> list[tuple[int, int]]:
        return self.sim.sources[SYMBOL].book.levels(side)

    def order(self, side: Side, price: int, size: int, tif: TimeInForce = TimeInForce.IOC) -> Order:
        self.n += 1
        return Order(f"k{self.n}-{time.time_ns() % 10**8}", "arb", INST, side, price, size, tif)

    def sim_orders(self) -> list[SimOrder]:
        return list(self.sim.exchange.orders.values())


@asynccontextmanager
async def rig(
    gateway: type[KrakenGateway] = KrakenGateway, *, ws: bool = False, **kw: Any
) -> AsyncIterator[Rig]:
    async with KrakenSim([SYMBOL], seed=11, interval_s=0.05) as sim:
        sim.pause()  # a still book: what an IOC gets is known before it is sent
        sim.exchange.add_account(KEY, SECRET, balances=START)
        if ws:
            kw["ws_url"] = sim.ws_auth_url
        gw = gateway("kraken", [INST], kw.pop("credentials", creds()), rest_url=sim.rest_url, **kw)
        rec = Recorder()
        gw.set_listener(rec)
        r = Rig(sim, gw, rec)
        gw.on_rate_limit = lambda venue, s, banned: r.limits.append((venue, s, banned))
        async with gw:
            yield r


async def test_wrong_secret_is_refused_by_the_venue() -> None:
    async with rig(credentials=creds(OTHER_SECRET)) as r:
        best = r.levels(ASK)[0]
        o = r.order(Side.BUY, best[0], 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED
        assert "EAPI:Invalid signature" in reason
        assert OTHER_SECRET not in reason and SECRET not in reason
        assert r.sim.exchange.requests == 0
        # The simulator's own answer, on the wire.
        path, body = "/0/private/Balance", "nonce=1"
        headers = kraken_headers(KEY, secret(OTHER_SECRET), path, 1, body)
        async with (
            aiohttp.ClientSession() as http,
            http.post(r.sim.rest_url + path, data=body, headers=headers) as resp,
        ):
            assert resp.status == 200
            assert await resp.json() == {"error": ["EAPI:Invalid signature"], "result": {}}


async def test_a_lower_nonce_on_the_same_key_is_refused() -> None:
    """Kraken's replay guard is the nonce, not a timestamp window: a second process on the
    same key whose clock is behind is refused, and the first goes on."""
    async with rig() as r:
        bid = r.levels(BID)[0][0]
        first = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(first)
        assert (await r.rec.final(first.client_id))[0] is OrderStatus.FILLED
        behind = KrakenGateway(
            "kraken",
            [INST],
            creds(),
            rest_url=r.sim.rest_url,
            wall=lambda: time.time_ns() - 5_000_000_000,
        )
        rec = Recorder()
        behind.set_listener(rec)
        async with behind:
            late = r.order(Side.SELL, bid, 100_000)
            behind.submit(late)
            status, reason = await rec.final(late.client_id)
        assert status is OrderStatus.REJECTED and "EAPI:Invalid nonce" in reason
        assert len(r.sim_orders()) == 1
        again = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(again)
        assert (await r.rec.final(again.client_id))[0] is OrderStatus.FILLED


async def test_ioc_crossing_fills_exactly_and_moves_the_balances() -> None:
    async with rig() as r:
        asks = r.levels(ASK)
        limit = asks[1][0]
        size = asks[0][1] + asks[1][1] // 2
        want = walk(asks, limit, size, buy=True)
        assert len(want) == 2
        o = r.order(Side.BUY, limit, size)
        r.gw.submit(o)
        status, _ = await r.rec.final(o.client_id)
        assert status is OrderStatus.FILLED
        assert r.rec.kinds(o.client_id) == ["ack", "fill", "fill", "done"]
        fills = r.rec.fills[o.client_id]
        assert [(f.price, f.size) for f in fills] == want
        # price units x size units of BTC/USD are 10**-9 USD: 10**9 atoms each.
        notionals = [p * s * 10**9 for p, s in want]
        assert [f.fee for f in fills] == [fee_up(n, FEE_BPS) for n in notionals]
        assert {f.fee_asset for f in fills} == {"USD"}
        assert len({f.trade_id for f in fills}) == 2 and all(f.trade_id for f in fills)
        account = r.sim.exchange.accounts[KEY]
        assert account.free["USD"] == 100_000 * ATOMS - sum(notionals) - sum(f.fee for f in fills)
        assert account.free["BTC"] == 2 * ATOMS + size * 10**10
        balances = await r.gw.balances()
        assert {a: (b.free, b.locked) for a, b in balances.items()} == {
            "USD": (account.free["USD"], 0),
            "BTC": (account.free["BTC"], 0),
        }


async def test_ioc_inside_the_book_is_canceled_with_its_partial_fill() -> None:
    async with rig() as r:
        best_price, best_size = r.levels(BID)[0]
        o = r.order(Side.SELL, best_price, best_size + 1000)
        r.gw.submit(o)
        status, _ = await r.rec.final(o.client_id)
        assert status is OrderStatus.CANCELED
        assert [(f.price, f.size) for f in r.rec.fills[o.client_id]] == [(best_price, best_size)]


async def test_fok_is_refused_without_a_request() -> None:
    async with rig() as r:
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000, TimeInForce.FOK)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and "no FOK" in reason
        assert r.gw.counters.reject_codes == {"FOK": 1}
        assert r.sim.exchange.requests == 0 and r.sim.orders.nonces == {}


async def test_size_below_the_minimum_is_rejected() -> None:
    async with rig() as r:
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 4999)  # ordermin is 0.00005
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and "EOrder:Order minimum not met" in reason
        assert r.sim_orders() == []


async def test_query_open_orders_cancel_and_balances() -> None:
    async with rig() as r:
        ask = r.levels(ASK)[0][0]
        o = r.order(Side.BUY, ask, 100_000)
        r.gw.submit(o)
        await r.rec.final(o.client_id)
        known = await r.gw.query(o.client_id)
        assert known is not None and known.status is OrderStatus.FILLED
        assert known.filled == 100_000 and [f.size for f in known.fills] == [100_000]
        assert await r.gw.query("never-sent") is None
        # A leftover of an earlier run, resting far below the market.
        r.sim.exchange.rest(KEY, SYMBOL, "BUY", "30000.0", "0.01000000", "left-1")
        resting = await r.gw.open_orders()
        assert [(v.client_id, v.status, v.price, v.size) for v in resting] == [
            ("left-1", OrderStatus.ACKED, 300_000, 1_000_000)
        ]
        balances = await r.gw.balances()
        account = r.sim.exchange.accounts[KEY]
        assert balances["USD"].locked == 300 * ATOMS == account.locked["USD"]
        assert balances["USD"].free == account.free["USD"]
        canceled = await r.gw.cancel("left-1", SYMBOL)
        assert canceled is not None and canceled.status is OrderStatus.CANCELED
        assert await r.gw.open_orders() == []
        assert await r.gw.cancel("left-1", SYMBOL) is None
        after = await r.gw.balances()
        assert after["USD"].locked == 0 and after["USD"].free == account.free["USD"]
        assert kraken_asset("XXBT") == "BTC" and kraken_asset("XETH.F") == "ETH.F"


async def test_lost_reply_is_found_by_client_id_not_sent_twice() -> None:
    async with rig() as r:
        r.sim.faults.inject(Fault.ORDER_TIMEOUT)
        bid = r.levels(BID)[0][0]
        o = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(o)
        status, _ = await r.rec.final(o.client_id)
        assert status is OrderStatus.FILLED
        assert r.gw.counters.retries == 1 and r.gw.counters.rejects == 0
        assert len(r.sim_orders()) == 1  # Kraken would have taken a second AddOrder
        assert [f.size for f in r.rec.fills[o.client_id]] == [100_000]
        assert r.rec.kinds(o.client_id) == ["ack", "fill", "done"]


class _NoRetry(KrakenGateway):
    retry_budget: ClassVar[int] = 0


async def test_lost_reply_without_retries_leaves_it_to_query() -> None:
    async with rig(gateway=_NoRetry) as r:
        r.sim.faults.inject(Fault.ORDER_TIMEOUT)
        o = r.order(Side.SELL, r.levels(BID)[0][0], 100_000)
        r.gw.submit(o)
        await until(lambda: r.gw.counters.unknown == 1, 4.0)
        assert o.client_id not in r.rec.done
        truth = await r.gw.query(o.client_id)
        assert truth is not None and truth.status is OrderStatus.FILLED
        assert truth.filled == 100_000 == r.sim_orders()[0].filled


@pytest.mark.parametrize(
    ("fault", "code", "wait", "banned"),
    [
        (Fault.ORDER_429, "EOrder:Rate limit exceeded", 1.0, False),
        (Fault.ORDER_418, "EGeneral:Temporary lockout", 900.0, True),
    ],
)
async def test_rate_limits_refuse_and_hold_off(
    fault: Fault, code: str, wait: float, banned: bool
) -> None:
    async with rig() as r:
        r.sim.faults.inject(fault)
        ask = r.levels(ASK)[0][0]
        o = r.order(Side.BUY, ask, 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and code in reason
        assert r.limits == [("kraken", wait, banned)]
        sent = r.gw.counters.rest_sent
        nonces = dict(r.sim.orders.nonces)
        nxt = r.order(Side.BUY, ask, 100_000)
        r.gw.submit(nxt)
        status, reason = await r.rec.final(nxt.client_id)
        assert status is OrderStatus.REJECTED and "rate limited" in reason
        assert r.sim.orders.nonces == nonces  # refused here: no request reached the venue
        assert r.gw.counters.rest_sent == sent and r.sim_orders() == []


async def test_late_fill_is_acked_first_and_followed() -> None:
    async with rig() as r:
        r.sim.faults.inject(Fault.ORDER_LATE_FILL, seconds=0.2)
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        await until(lambda: r.rec.kinds(o.client_id) == ["ack"], 2.0)
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.FILLED
        assert r.rec.kinds(o.client_id) == ["ack", "fill", "done"]


async def test_partial_fault_cancels_the_rest() -> None:
    async with rig() as r:
        r.sim.faults.inject(Fault.ORDER_PARTIAL)
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.CANCELED
        assert sum(f.size for f in r.rec.fills[o.client_id]) == 50_000


async def test_server_errors_and_cut_replies_are_unknown_never_rejected() -> None:
    async with rig() as r:
        r.sim.faults.inject(Fault.REST_5XX, status=503)
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.retries == 1
        r.sim.faults.inject(Fault.TRUNCATED)  # the AddOrder reply: executed, reply cut
        o2 = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o2)
        assert (await r.rec.final(o2.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.retries == 2 and len(r.sim_orders()) == 2
        r.sim.faults.inject(Fault.TRUNCATED)
        with pytest.raises(GatewayError) as info:
            await r.gw.balances()
        text = str(info.value)
        assert "\n" not in text and SECRET not in text and "not JSON" in text


async def test_a_long_client_id_goes_as_a_short_uuid_and_comes_back() -> None:
    async with rig() as r:
        long_id = "18f3a2b4c5d6-123456-H12"  # over Kraken's 18 characters of free text
        o = Order(long_id, "arb", INST, Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        assert (await r.rec.final(long_id))[0] is OrderStatus.FILLED
        sent = kraken_cl_ord_id(long_id)
        assert len(sent) == 32 and sent == kraken_cl_ord_id(long_id)
        assert r.sim.orders._orders_of(KEY, sent)[0].filled == 100_000
        found = await r.gw.query(long_id)
        assert found is not None and found.client_id == long_id
        assert found.status is OrderStatus.FILLED
        # Straight to the venue, unmapped: Kraken refuses it.
        path = "/0/private/AddOrder"
        body = f"nonce={r.gw.nonce()}&ordertype=limit&type=buy&volume=0.001&price=1.0"
        body += f"&pair=XBTUSD&timeinforce=IOC&cl_ord_id={long_id}"
        headers = kraken_headers(KEY, secret(SECRET), path, body.split("&")[0][6:], body)
        async with (
            aiohttp.ClientSession() as http,
            http.post(r.sim.rest_url + path, data=body, headers=headers) as resp,
        ):
            doc = await resp.json()
        assert doc["error"] == ["EGeneral:Invalid arguments:cl_ord_id"]


async def test_a_live_order_with_the_same_id_is_a_duplicate() -> None:
    async with rig() as r:
        r.sim.exchange.rest(KEY, SYMBOL, "BUY", "30000.0", "0.01000000", "left-2")
        o = Order("left-2", "arb", INST, Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final("left-2")
        assert status is OrderStatus.REJECTED and "EOrder:Duplicate order" in reason
        assert len(r.sim_orders()) == 1


def test_a_malformed_secret_is_one_line_at_construction() -> None:
    with pytest.raises(ValueError) as info:
        KrakenGateway("kraken", [INST], creds("not base64!"), rest_url="http://127.0.0.1:1")
    assert "\n" not in str(info.value) and "not base64!" not in str(info.value)


# -- WebSocket v2 order entry (wss://ws-auth.kraken.com/v2) ----------------------------------


async def ws_ready(r: Rig) -> None:
    await until(lambda: r.gw.ws_ready, 3.0, lambda: r.gw.ws_error)


async def test_ws_order_fills_exactly_and_is_followed_over_rest() -> None:
    async with rig(ws=True) as r:
        await ws_ready(r)
        asks = r.levels(ASK)
        limit = asks[1][0]
        size = asks[0][1] + asks[1][1] // 2
        want = walk(asks, limit, size, buy=True)
        o = r.order(Side.BUY, limit, size)
        r.gw.submit(o)
        status, _ = await r.rec.final(o.client_id)
        assert status is OrderStatus.FILLED
        assert r.rec.kinds(o.client_id) == ["ack", "fill", "fill", "done"]
        fills = r.rec.fills[o.client_id]
        assert [(f.price, f.size) for f in fills] == want
        assert [f.fee for f in fills] == [fee_up(p * s * 10**9, FEE_BPS) for p, s in want]
        venue = r.sim_orders()
        assert len(venue) == 1 and venue[0].filled == size
        assert r.gw.counters.ws_sent == 1 and r.gw.counters.rest_sent == 0
        assert r.sim.orders.ws_orders == 1 and r.sim.exchange.requests == 1
        # The venue's refusals come back on the socket with the REST texts.
        small = r.order(Side.BUY, limit, 1)
        r.gw.submit(small)
        status, reason = await r.rec.final(small.client_id)
        assert status is OrderStatus.REJECTED and "EOrder:Order minimum not met" in reason
        assert r.gw.counters.ws_sent == 2 and r.gw.counters.rest_sent == 0
        # A token used on a connection stays valid past its 15 minutes.
        r.sim.orders.token_ttl_s = 0.0
        bid = r.levels(BID)[0][0]
        sell = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(sell)
        assert (await r.rec.final(sell.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.ws_sent == 3 and len(r.sim.orders.tokens) == 1


async def test_ws_token_refused_for_a_wrong_secret_leaves_orders_on_rest() -> None:
    async with rig(ws=True, credentials=creds(OTHER_SECRET)) as r:
        await until(lambda: "EAPI:Invalid signature" in r.gw.ws_error, 5.0)
        assert not r.gw.ws_ready and r.sim.orders.tokens == {}
        assert OTHER_SECRET not in r.gw.ws_error and SECRET not in r.gw.ws_error
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and "EAPI:Invalid signature" in reason
        assert r.gw.counters.ws_sent == 0 and r.sim.orders.ws_orders == 0
        assert r.sim.exchange.requests == 0


async def test_ws_an_invalid_token_gets_a_new_one_and_the_order_goes_over_rest() -> None:
    async with rig(ws=True) as r:
        await ws_ready(r)
        r.sim.orders.tokens.clear()  # unknown to the venue now (expired unused)
        bid = r.levels(BID)[0][0]
        o = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(o)
        status, _ = await r.rec.final(o.client_id)
        assert status is OrderStatus.FILLED
        assert [f.size for f in r.rec.fills[o.client_id]] == [100_000]
        assert r.gw.counters.ws_sent == 1 and r.gw.counters.rest_sent == 1
        assert r.sim.orders.ws_orders == 1 and r.sim.exchange.requests == 1
        await ws_ready(r)  # a fresh token for the same socket
        assert len(r.sim.orders.tokens) == 1
        nxt = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(nxt)
        assert (await r.rec.final(nxt.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.ws_sent == 2 and r.sim.orders.ws_orders == 2


async def test_ws_rate_limit_refuses_and_holds_off() -> None:
    async with rig(ws=True) as r:
        await ws_ready(r)
        r.sim.faults.inject(Fault.ORDER_429)
        ask = r.levels(ASK)[0][0]
        o = r.order(Side.BUY, ask, 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and "EOrder:Rate limit exceeded" in reason
        assert r.limits == [("kraken", 1.0, False)]
        assert r.gw.counters.ws_sent == 1 and r.gw.counters.rate_limited == 1
        nxt = r.order(Side.BUY, ask, 100_000)
        r.gw.submit(nxt)
        status, reason = await r.rec.final(nxt.client_id)
        assert status is OrderStatus.REJECTED and "rate limited" in reason
        assert r.gw.counters.ws_sent == 1 and r.sim.orders.ws_orders == 1
        assert r.sim_orders() == []


async def test_ws_lost_reply_ends_with_the_venue_truth_over_rest() -> None:
    async with rig(ws=True, timeout_s=0.5) as r:
        await ws_ready(r)
        r.sim.faults.inject(Fault.ORDER_TIMEOUT)  # executed, then the socket is cut
        bid = r.levels(BID)[0][0]
        o = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(o)
        status, _ = await r.rec.final(o.client_id)
        assert status is OrderStatus.FILLED
        assert r.rec.kinds(o.client_id) == ["ack", "fill", "done"]
        venue = r.sim_orders()
        assert len(venue) == 1 and venue[0].status == "FILLED"  # asked, never sent again
        assert [f.size for f in r.rec.fills[o.client_id]] == [100_000]
        assert r.sim.exchange.requests == 1 and r.gw.counters.ws_sent == 1
        assert r.gw.counters.rejects == 0
        # The reconnect fetched a token of its own, and the socket takes orders again.
        await ws_ready(r)
        assert len(r.sim.orders.tokens) == 2
        nxt = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(nxt)
        assert (await r.rec.final(nxt.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.ws_sent == 2


async def test_ws_drop_with_an_order_in_flight_ends_with_the_venue_truth() -> None:
    async with rig(ws=True, timeout_s=0.5) as r:
        await ws_ready(r)
        r.sim.orders.drop_next_ws_order = True  # the frame goes down with the socket
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        status, _ = await r.rec.final(o.client_id)
        assert status is OrderStatus.FILLED  # the venue had none: sent once, over REST
        assert r.sim.orders.ws_orders == 0 and r.gw.counters.ws_sent == 1
        assert r.gw.counters.rest_sent == 1 and r.sim.exchange.requests == 1
        venue = r.sim_orders()
        assert len(venue) == 1 and r.sim.orders._cl_of(venue[0]) == o.client_id
        assert [f.size for f in r.rec.fills[o.client_id]] == [100_000]


async def test_ws_clock_skew_does_not_matter_to_token_auth() -> None:
    """Kraken checks no timestamp on add_order (the token is the auth, the REST nonce is
    ours): a venue clock a minute off changes nothing."""
    async with rig(ws=True) as r:
        r.sim.exchange.skew_ms = 60_000
        await ws_ready(r)
        await r.gw.sync_time()
        assert 59_000 <= r.gw.offset_ms <= 61_000
        o = r.order(Side.SELL, r.levels(BID)[0][0], 100_000)
        r.gw.submit(o)
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.ws_sent == 1 and r.gw.counters.clock_resyncs == 0


async def test_ws_fok_is_refused_without_a_request() -> None:
    async with rig(ws=True) as r:
        await ws_ready(r)
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000, TimeInForce.FOK)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and "no FOK" in reason
        assert r.gw.counters.ws_sent == 0 and r.sim.exchange.requests == 0


async def test_ws_auth_wire_as_kraken_documents_it() -> None:
    async with rig() as r, aiohttp.ClientSession() as http:
        path, body = "/0/private/GetWebSocketsToken", "nonce=7"
        headers = kraken_headers(KEY, secret(SECRET), path, 7, body)
        async with http.post(r.sim.rest_url + path, data=body, headers=headers) as resp:
            doc = await resp.json()
        assert doc["error"] == [] and doc["result"]["expires"] == 900
        token = doc["result"]["token"]
        params: dict[str, Any] = {
            "order_type": "limit",
            "side": "sell",
            "symbol": SYMBOL,
            "time_in_force": "ioc",
            "cl_ord_id": "wire-1",
            "token": token,
        }
        bid = INST.price.format(r.levels(BID)[0][0])
        async with http.ws_connect(r.sim.ws_auth_url) as ws:
            status = await ws.receive_json()
            assert status["channel"] == "status"
            text = '{"method":"add_order","req_id":3,"params":{"order_qty":0.00100000,'
            text += f'"limit_price":{bid},' + orjson.dumps(params).decode()[1:] + "}"
            await ws.send_str(text)
            reply = await ws.receive_json()
            assert reply["success"] is True and reply["req_id"] == 3
            assert reply["method"] == "add_order"
            assert reply["result"]["cl_ord_id"] == "wire-1"
            assert reply["result"]["order_id"].startswith("O")
            assert {"time_in", "time_out"} <= set(reply)
            assert r.sim_orders()[0].filled == 100_000  # 0.001 BTC exactly
            bad = {"method": "add_order", "req_id": 4, "params": params | {"token": "nope"}}
            await ws.send_json(bad)
            reply = await ws.receive_json()
            assert (reply["success"], reply["error"], reply["req_id"]) == (
                False,
                "EAPI:Invalid token",
                4,
            )
            await ws.send_json({"method": "ping", "req_id": 5})
            assert (await ws.receive_json())["method"] == "pong"
        # The public endpoint takes no orders.
        async with http.ws_connect(r.sim.ws_url) as ws:
            await ws.receive_json()
            await ws.send_json({"method": "add_order", "req_id": 6, "params": params})
            reply = await ws.receive_json()
            assert reply["success"] is False and "not supported" in reply["error"]


class _QuickPing(KrakenGateway):
    ping_interval_s: ClassVar[float] = 0.05


async def test_ws_pings_keep_the_order_socket_and_pongs_are_not_answers() -> None:
    async with rig(_QuickPing, ws=True) as r:
        await ws_ready(r)
        feed = r.gw._ws
        assert feed is not None
        await until(lambda: feed.counters.pings >= 2, 4.0)  # checked once a second
        assert r.gw.ws_ready and r.gw.ws_error == ""
        o = r.order(Side.SELL, r.levels(BID)[0][0], 100_000)
        r.gw.submit(o)
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.ws_sent == 1 and r.sim.stats.connections == 1


async def test_ws_unreadable_reply_is_unknown_then_the_venue_truth_never_rejected() -> None:
    """A socket whose add_order replies lack the order id (a venue change, a proxy): the
    gateway cannot tell what happened, so it asks the venue over REST with the same
    client id, which has no such order, and sends it there once."""
    frames: list[dict[str, Any]] = []

    async def fake_auth(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            req = orjson.loads(msg.data)
            frames.append(req)
            if req.get("method") == "add_order":
                await ws.send_str(
                    orjson.dumps(
                        {"method": "add_order", "req_id": req["req_id"], "success": True}
                    ).decode()
                )
        return ws

    app = web.Application()
    app.router.add_get("/v2", fake_auth)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with rig(ws_url=f"ws://127.0.0.1:{port}/v2") as r:
            await ws_ready(r)  # the token came from the simulator's REST
            o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
            r.gw.submit(o)
            status, _ = await r.rec.final(o.client_id)
            assert status is OrderStatus.FILLED
            assert r.gw.counters.ws_sent == 1 and r.gw.counters.rest_sent == 1
            assert r.gw.counters.rejects == 0 and len(r.sim_orders()) == 1
            sent = [f["params"] for f in frames if f.get("method") == "add_order"]
            assert len(sent) == 1 and sent[0]["cl_ord_id"] == o.client_id
            assert sent[0]["token"] in r.sim.orders.tokens
            assert sent[0]["time_in_force"] == "ioc" and sent[0]["symbol"] == SYMBOL
    finally:
        await runner.cleanup()
