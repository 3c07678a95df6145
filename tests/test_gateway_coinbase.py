"""CoinbaseGateway against the simulated Coinbase Advanced Trade brokerage API over
loopback, with ES256 and Ed25519 CDP keys."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Literal

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways.base import GatewayError, VenueCredentials
from arbengine.gateways.coinbase import CoinbaseGateway
from arbengine.orders import Order, OrderStatus, Side, TimeInForce
from arbengine.venues.sim.coinbase import CoinbaseSim
from arbengine.venues.sim.exchange import ATOMS, SimOrder
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.model import ASK, BID
from tests.gateway_rig import Recorder, fee_up, walk
from tests.waiting import until

KEY = "organizations/sim-org/apiKeys/sim-key"
SYMBOL = "BTC-USD"
INST = Instrument("coinbase", SYMBOL, "BTC", "USD", tick="0.01", lot="0.00000001", min_notional="1")
START = {"USD": "100000", "BTC": "2"}
FEE_BPS = 120
UNIT_ATOMS = 10**8  # one price unit x one size unit of BTC-USD: 10**-10 USD


def _es256_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _ed25519_b64() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(seed + public).decode()


PEM = _es256_pem()
ED = _ed25519_b64()


def secret(value: str) -> Secret:
    return Secret(value, CredentialRef(source="env", name="COINBASE_TEST"))


def creds(api_secret: str) -> VenueCredentials:
    return VenueCredentials(secret(KEY), secret(api_secret))


class Rig:
    def __init__(self, sim: CoinbaseSim, gw: CoinbaseGateway, rec: Recorder) -> None:
        self.sim, self.gw, self.rec = sim, gw, rec
        self.limits: list[tuple[str, float, bool]] = []
        self.n = 0

    def levels(self, side: Literal["bid", "ask"]) -> list[tuple[int, int]]:
        return self.sim.sources[SYMBOL].book.levels(side)

    def order(self, side: Side, price: int, size: int, tif: TimeInForce = TimeInForce.IOC) -> Order:
        self.n += 1
        return Order(f"c{self.n}-{time.time_ns()}", "arb", INST, side, price, size, tif)

    def sim_orders(self) -> list[SimOrder]:
        return list(self.sim.exchange.orders.values())


@asynccontextmanager
async def rig(
    gateway: type[CoinbaseGateway] = CoinbaseGateway,
    *,
    account_secret: str = PEM,
    gateway_secret: str | None = None,
    **kw: Any,
) -> AsyncIterator[Rig]:
    async with CoinbaseSim([SYMBOL], seed=5, interval_s=0.05, idle_close_s=None) as sim:
        sim.pause()  # a still book: what an IOC gets is known before it is sent
        sim.exchange.add_account(KEY, account_secret, balances=START)
        gw = gateway(
            "coinbase", [INST], creds(gateway_secret or account_secret), rest_url=sim.rest_url, **kw
        )
        rec = Recorder()
        gw.set_listener(rec)
        r = Rig(sim, gw, rec)
        gw.on_rate_limit = lambda venue, s, banned: r.limits.append((venue, s, banned))
        async with gw:
            yield r


async def test_wrong_key_is_refused_with_401() -> None:
    async with rig(gateway_secret=_es256_pem()) as r:
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and "Unauthorized" in reason
        assert "PRIVATE KEY" not in reason
        assert r.sim.orders.unauthorized == 1 and r.sim.exchange.requests == 0
        url = r.sim.rest_url + "/api/v3/brokerage/accounts"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:  # no JWT at all
            assert resp.status == 401 and (await resp.text()).strip() == "Unauthorized"


async def test_expired_jwt_is_clock_skew_and_a_resync_heals_it() -> None:
    async with rig() as r:
        r.sim.exchange.skew_ms = 200_000  # beyond the JWT's 120 s life
        bid = r.levels(BID)[0][0]
        o = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and "Unauthorized" in reason
        await until(lambda: r.gw.counters.clock_resyncs == 1, 2.0)
        await until(lambda: abs(r.gw.offset_ms - 200_000) < 2_000, 2.0, lambda: r.gw.offset_ms)
        again = r.order(Side.SELL, bid, 100_000)
        r.gw.submit(again)
        assert (await r.rec.final(again.client_id))[0] is OrderStatus.FILLED


async def test_a_clock_jump_while_an_order_is_out_is_healed_by_its_queries() -> None:
    # The placement goes through (acked, its fill still to come); then the venue's clock
    # jumps past the JWT's life, so every query about the order is refused until the
    # gateway resyncs. The follow-up and the executor's own query both heal it.
    async with rig() as r:
        r.sim.faults.inject(Fault.ORDER_LATE_FILL, seconds=0.5)
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        await until(lambda: r.rec.kinds(o.client_id) == ["ack"], 2.0)
        r.sim.exchange.skew_ms = 200_000
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.FILLED
        assert r.rec.kinds(o.client_id) == ["ack", "fill", "done"]
        assert r.gw.counters.clock_resyncs == 1
        assert abs(r.gw.offset_ms - 200_000) < 2_000
        r.sim.exchange.skew_ms = 0  # and back: the next query meets it and resyncs again
        state = await r.gw.query(o.client_id)
        assert state is not None and state.status is OrderStatus.FILLED
        assert state.filled == 100_000 and r.gw.counters.clock_resyncs == 2
        assert abs(r.gw.offset_ms) < 2_000


@pytest.mark.parametrize("key", [PEM, ED], ids=["es256", "ed25519"])
async def test_ioc_crossing_fills_exactly_and_moves_the_balances(key: str) -> None:
    async with rig(account_secret=key) as r:
        asks = r.levels(ASK)
        limit = asks[2][0]
        size = asks[0][1] + asks[1][1] + 7
        want = walk(asks, limit, size, buy=True)
        assert len(want) == 3
        o = r.order(Side.BUY, limit, size)
        r.gw.submit(o)
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.FILLED
        assert r.rec.kinds(o.client_id) == ["ack", "fill", "fill", "fill", "done"]
        fills = r.rec.fills[o.client_id]
        assert [(f.price, f.size) for f in fills] == want
        notionals = [p * s * UNIT_ATOMS for p, s in want]
        assert [f.fee for f in fills] == [fee_up(n, FEE_BPS) for n in notionals]
        assert {f.fee_asset for f in fills} == {"USD"} and len({f.trade_id for f in fills}) == 3
        account = r.sim.exchange.accounts[KEY]
        assert account.free["USD"] == 100_000 * ATOMS - sum(notionals) - sum(f.fee for f in fills)
        assert account.free["BTC"] == 2 * ATOMS + size * 10**10
        balances = await r.gw.balances()
        assert {a: (b.free, b.locked) for a, b in balances.items()} == {
            "USD": (account.free["USD"], 0),
            "BTC": (account.free["BTC"], 0),
        }


async def test_ioc_partial_fok_nothing_and_small_size_rejected() -> None:
    async with rig() as r:
        best_price, best_size = r.levels(BID)[0]
        part = r.order(Side.SELL, best_price, best_size + 500)
        r.gw.submit(part)
        assert (await r.rec.final(part.client_id))[0] is OrderStatus.CANCELED
        assert [(f.price, f.size) for f in r.rec.fills[part.client_id]] == [(best_price, best_size)]
        fok = r.order(Side.SELL, best_price, best_size + 500, TimeInForce.FOK)
        r.gw.submit(fok)
        assert (await r.rec.final(fok.client_id))[0] is OrderStatus.CANCELED
        assert fok.client_id not in r.rec.fills
        assert r.rec.kinds(fok.client_id) == ["ack", "done"]
        tiny = r.order(Side.BUY, r.levels(ASK)[0][0], 1)  # 1 satoshi: under the $1 minimum
        r.gw.submit(tiny)
        status, reason = await r.rec.final(tiny.client_id)
        assert status is OrderStatus.REJECTED
        assert r.gw.counters.reject_codes == {"PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL": 1}
        assert "notional" in reason


async def test_query_open_orders_cancel_and_balances() -> None:
    async with rig() as r:
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        await r.rec.final(o.client_id)
        known = await r.gw.query(o.client_id)
        assert known is not None and known.status is OrderStatus.FILLED
        assert known.filled == 100_000 and sum(f.size for f in known.fills) == 100_000
        assert await r.gw.query("never-sent") is None
        r.sim.exchange.rest(KEY, SYMBOL, "SELL", "90000.00", "0.5", "left-1")
        resting = await r.gw.open_orders()
        assert [(v.client_id, v.status, v.price, v.size) for v in resting] == [
            ("left-1", OrderStatus.ACKED, 9_000_000, 50_000_000)
        ]
        account = r.sim.exchange.accounts[KEY]
        balances = await r.gw.balances()
        assert balances["BTC"].locked == ATOMS // 2 == account.locked["BTC"]
        assert balances["BTC"].free == account.free["BTC"]
        found = await r.gw.query("left-1")  # not sent by this gateway: found by a scan
        assert found is not None and found.status is OrderStatus.ACKED
        canceled = await r.gw.cancel("left-1", SYMBOL)
        assert canceled is not None and canceled.status is OrderStatus.CANCELED
        assert await r.gw.open_orders() == []
        assert (await r.gw.balances())["BTC"].locked == 0


async def test_lost_reply_resent_and_coinbase_returns_the_original() -> None:
    async with rig() as r:
        r.sim.faults.inject(Fault.ORDER_TIMEOUT)
        o = r.order(Side.SELL, r.levels(BID)[0][0], 100_000)
        r.gw.submit(o)
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.retries == 1 and r.gw.counters.rejects == 0
        assert len(r.sim_orders()) == 1 and r.sim.exchange.requests == 1
        assert [f.size for f in r.rec.fills[o.client_id]] == [100_000]
        assert r.rec.kinds(o.client_id) == ["ack", "fill", "done"]


class _NoRetry(CoinbaseGateway):
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


async def test_429_refuses_and_holds_off_for_retry_after() -> None:
    async with rig() as r:
        r.sim.faults.inject(Fault.ORDER_429, seconds=3.0)
        with pytest.raises(ValueError, match="does not simulate"):
            r.sim.faults.inject(Fault.ORDER_418)  # Coinbase has no 418
        ask = r.levels(ASK)[0][0]
        o = r.order(Side.BUY, ask, 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED and "429" in reason
        assert r.limits == [("coinbase", 3.0, False)]
        requests = r.sim.stats.rest_requests
        nxt = r.order(Side.BUY, ask, 100_000)
        r.gw.submit(nxt)
        status, reason = await r.rec.final(nxt.client_id)
        assert status is OrderStatus.REJECTED and "rate limited" in reason
        assert r.sim.stats.rest_requests == requests and r.sim_orders() == []


async def test_late_fill_and_partial_fault() -> None:
    async with rig() as r:
        r.sim.faults.inject(Fault.ORDER_LATE_FILL, seconds=0.2)
        late = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(late)
        await until(lambda: r.rec.kinds(late.client_id) == ["ack"], 2.0)
        assert (await r.rec.final(late.client_id))[0] is OrderStatus.FILLED
        assert r.rec.kinds(late.client_id) == ["ack", "fill", "done"]
        r.sim.faults.inject(Fault.ORDER_PARTIAL)
        part = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(part)
        assert (await r.rec.final(part.client_id))[0] is OrderStatus.CANCELED
        assert sum(f.size for f in r.rec.fills[part.client_id]) == 50_000


async def test_server_errors_and_cut_replies_are_unknown_never_rejected() -> None:
    async with rig() as r:
        r.sim.faults.inject(Fault.REST_5XX, status=502)
        o = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        assert (await r.rec.final(o.client_id))[0] is OrderStatus.FILLED
        r.sim.faults.inject(Fault.TRUNCATED)  # the create reply: executed, reply cut
        o2 = r.order(Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o2)
        assert (await r.rec.final(o2.client_id))[0] is OrderStatus.FILLED
        assert r.gw.counters.retries == 2 and len(r.sim_orders()) == 2
        r.sim.faults.inject(Fault.TRUNCATED)
        with pytest.raises(GatewayError) as info:
            await r.gw.balances()
        text = str(info.value)
        assert "\n" not in text and "not JSON" in text and "PRIVATE" not in text


def test_a_malformed_key_is_one_line_at_construction() -> None:
    with pytest.raises(ValueError) as info:
        CoinbaseGateway("coinbase", [INST], creds("not a key"), rest_url="http://127.0.0.1:1")
    assert "\n" not in str(info.value) and "not a key" not in str(info.value)


async def test_an_id_naming_another_order_is_rejected_not_adopted() -> None:
    async with rig() as r:
        r.sim.exchange.rest(KEY, SYMBOL, "SELL", "90000.00", "0.5", "left-9")
        o = Order("left-9", "arb", INST, Side.BUY, r.levels(ASK)[0][0], 100_000)
        r.gw.submit(o)
        status, reason = await r.rec.final("left-9")
        assert status is OrderStatus.REJECTED and "CLIENT_ORDER_ID_REUSED" in reason
        assert len(r.sim_orders()) == 1 and r.sim_orders()[0].side == "SELL"
