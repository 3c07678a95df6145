"""Binance gateways (spot and USDⓈ-M, REST + WebSocket API) against the simulator over
loopback: signing, clock skew, fills and fees to the atom, the venue's truth after lost
replies, rate limits and malformed replies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways.base import (
    Balance,
    GatewayError,
    Position,
    UnknownOutcome,
    VenueCredentials,
)
from arbengine.gateways.binance import BinanceGateway, BinanceUsdmGateway
from arbengine.orders import AtomScale, Fill, Order, OrderStatus, Side, TimeInForce, atoms
from arbengine.venues.signing import binance_rest_signature, binance_ws_signed_params
from arbengine.venues.sim.binance import BinanceSim
from arbengine.venues.sim.exchange import SimOrder
from arbengine.venues.sim.faults import Fault
from arbengine.venues.sim.model import ASK, BID
from tests.waiting import until

KEY = "simKey0123456789abcdef"
SECRET = "simSecretNotForLogs0123456789"
SPOT = Instrument(
    "binance",
    "BTCUSDT",
    "BTC",
    "USDT",
    tick="0.01",
    lot="0.00001",
    min_size="0.00001",
    min_notional="5",
)
USDM = Instrument(
    "binance_usdm",
    "BTCUSDT",
    "BTC",
    "USDT",
    tick="0.10",
    lot="0.001",
    min_size="0.001",
    min_notional="100",
)
BALANCES = {"USDT": "1000000", "BTC": "2"}


def secret(value: str) -> Secret:
    return Secret(value, CredentialRef(source="env", name="BINANCE_API_SECRET"))


def creds(api_secret: str = SECRET, key: str = KEY) -> VenueCredentials:
    return VenueCredentials(secret(key), secret(api_secret))


@dataclass
class Recorder:
    """OrderEvents that keeps what it heard, in order."""

    events: list[tuple[str, str]] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    done: dict[str, tuple[OrderStatus, str]] = field(default_factory=dict)

    def on_ack(self, order: Order, ts_ns: int) -> None:
        self.events.append(("ack", order.client_id))

    def on_fill(self, order: Order, fill: Fill) -> None:
        self.events.append(("fill", order.client_id))
        self.fills.append(fill)

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        assert order.client_id not in self.done, "a second final state"
        self.events.append(("done", order.client_id))
        self.done[order.client_id] = (status, reason)

    async def final(self, client_id: str, timeout: float = 4.0) -> tuple[OrderStatus, str]:
        await until(lambda: client_id in self.done, timeout, lambda: self.events)
        return self.done[client_id]


@dataclass
class Rig:
    sim: BinanceSim
    gw: BinanceGateway | BinanceUsdmGateway
    rec: Recorder
    limits: list[tuple[str, float, bool]]


@contextlib.asynccontextmanager
async def _rig(
    market: str,
    *,
    ws: bool = False,
    api_secret: str = SECRET,
    cls: type[BinanceGateway] | type[BinanceUsdmGateway] | None = None,
    key: str = KEY,
) -> AsyncIterator[Rig]:
    sim = BinanceSim(market="spot" if market == "spot" else "usdm", seed=7, interval_s=0.05)
    await sim.start()
    sim.pause()  # a still book: the expected fills are computed from it
    sim.exchange.add_account(KEY, SECRET, balances=BALANCES)
    limits: list[tuple[str, float, bool]] = []
    gw_cls = cls or (BinanceGateway if market == "spot" else BinanceUsdmGateway)
    gw = gw_cls(
        "binance" if market == "spot" else "binance_usdm",
        [SPOT if market == "spot" else USDM],
        creds(api_secret, key),
        rest_url=sim.rest_url,
        ws_url=sim.ws_api_url if ws else None,
        timeout_s=1.0,
        on_rate_limit=lambda v, s, b: limits.append((v, s, b)),
    )
    rec = Recorder()
    gw.set_listener(rec)
    await gw.start()
    if ws:
        await until(lambda: gw.ws_ready, 3.0)
    try:
        yield Rig(sim, gw, rec, limits)
    finally:
        await gw.close()
        await sim.stop()


@pytest.fixture
async def spot() -> AsyncIterator[Rig]:
    async with _rig("spot") as rig:
        yield rig


@pytest.fixture
async def spot_ws() -> AsyncIterator[Rig]:
    async with _rig("spot", ws=True) as rig:
        yield rig


@pytest.fixture
async def usdm() -> AsyncIterator[Rig]:
    async with _rig("usdm") as rig:
        yield rig


_ids = iter(range(1, 10**6))


def order(
    rig: Rig,
    side: Side,
    price: int,
    size: int,
    tif: TimeInForce = TimeInForce.IOC,
    client_id: str | None = None,
) -> Order:
    inst = rig.gw.instruments["BTCUSDT"]
    return Order(client_id or f"t{next(_ids)}x", "arb1", inst, side, price, size, tif)


def asks(rig: Rig) -> list[tuple[int, int]]:
    """The true ask levels in the gateway's units (same grids as the simulator's)."""
    return list(rig.sim.sources["BTCUSDT"].book.levels(ASK))


def sim_order(rig: Rig, client_id: str) -> SimOrder:
    found = rig.sim.exchange.get(KEY, client_id=client_id)
    assert found is not None
    return found


def expected_fills(rig: Rig, client_id: str) -> list[tuple[str, int, int, int, str]]:
    return [
        (str(f.trade_id), f.price, f.size, f.fee, f.fee_asset)
        for f in sim_order(rig, client_id).fills
    ]


def got_fills(rig: Rig, client_id: str) -> list[tuple[str, int, int, int, str]]:
    return [
        (f.trade_id, f.price, f.size, f.fee, f.fee_asset)
        for f in rig.rec.fills
        if f.client_id == client_id
    ]


def sizes(positions: dict[str, Position]) -> dict[str, int]:
    return {symbol: p.size for symbol, p in positions.items()}


def sim_balances(rig: Rig) -> dict[str, Balance]:
    account = rig.sim.exchange.accounts[KEY]
    assets = set(account.free) | set(account.locked)
    out = {a: Balance(a, account.free.get(a, 0), account.locked.get(a, 0)) for a in assets}
    return {a: b for a, b in out.items() if b.free or b.locked}


async def signed_post(
    sim: BinanceSim, path: str, params: list[tuple[str, str]], api_secret: str, ts_ms: int
) -> tuple[int, dict[str, object]]:
    text = urlencode([*params, ("recvWindow", "5000"), ("timestamp", str(ts_ms))])
    body = f"{text}&signature={binance_rest_signature(secret(api_secret), '', text)}"
    headers = {"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.rest_url}{path}", data=body, headers=headers) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


# -- request security ------------------------------------------------------------------------


async def test_simulator_verifies_signature_key_and_window(spot: Rig) -> None:
    sim = spot.sim
    params = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "IOC"),
        ("quantity", "0.00100"),
        ("price", "10000.00"),
    ]
    now = sim.exchange.now_ms()
    status, body = await signed_post(sim, "/api/v3/order", params, "wrong-secret", now)
    assert (status, body["code"]) == (400, -1022)
    assert body["msg"] == "Signature for this request is not valid."
    status, body = await signed_post(sim, "/api/v3/order", params, SECRET, now + 2000)
    assert (status, body["code"]) == (400, -1021)
    assert "1000ms ahead" in str(body["msg"])
    status, body = await signed_post(sim, "/api/v3/order", params, SECRET, now - 5200)
    assert (status, body["code"]) == (400, -1021)
    assert "recvWindow" in str(body["msg"])
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{sim.rest_url}/api/v3/account", headers={"X-MBX-APIKEY": "nobody123"}
        ) as resp,
    ):
        assert resp.status == 401
        assert orjson.loads(await resp.read())["code"] == -2015
    # A correct request passes all three checks (a far limit: it expires unfilled).
    status, body = await signed_post(sim, "/api/v3/order", params, SECRET, now)
    assert status == 200 and body["status"] == "EXPIRED" and body["fills"] == []
    assert sim.exchange.requests == 1


async def test_wrong_secret_is_rejected() -> None:
    async with _rig("spot", api_secret="not-the-secret") as rig:
        o = order(rig, Side.BUY, asks(rig)[0][0], 100)
        rig.gw.submit(o)
        status, reason = await rig.rec.final(o.client_id)
        assert status is OrderStatus.REJECTED
        assert reason.startswith("-1022")
        assert "not-the-secret" not in reason and SECRET not in reason
        assert rig.sim.exchange.requests == 0


async def test_clock_skew_resyncs_and_next_order_passes(spot: Rig) -> None:
    spot.sim.exchange.skew_ms = 20_000  # the venue's clock runs 20 s ahead of ours
    first = order(spot, Side.BUY, asks(spot)[0][0], 100)
    spot.gw.submit(first)
    status, reason = await spot.rec.final(first.client_id)
    assert status is OrderStatus.REJECTED and reason.startswith("-1021")
    await until(lambda: abs(spot.gw.offset_ms - 20_000) < 500, 3.0)
    assert spot.gw.counters.clock_resyncs == 1
    second = order(spot, Side.BUY, asks(spot)[0][0], 100)
    spot.gw.submit(second)
    assert (await spot.rec.final(second.client_id))[0] is OrderStatus.FILLED


# -- fills -----------------------------------------------------------------------------------


async def test_ioc_crossing_fills_exactly_and_moves_balances(spot: Rig) -> None:
    levels = asks(spot)
    size = levels[0][1] + levels[1][1] + 1
    o = order(spot, Side.BUY, levels[2][0], size)
    before = sim_balances(spot)
    spot.gw.submit(o)
    status, _ = await spot.rec.final(o.client_id)
    assert status is OrderStatus.FILLED
    assert spot.rec.events[0] == ("ack", o.client_id)
    fills = got_fills(spot, o.client_id)
    assert [(p, s) for _, p, s, _, _ in fills] == [
        (levels[0][0], levels[0][1]),
        (levels[1][0], levels[1][1]),
        (levels[2][0], 1),
    ]
    assert fills == expected_fills(spot, o.client_id)
    assert all(asset == "BTC" for *_, asset in fills)  # spot: the fee is in what we got
    ex = spot.sim.exchange
    spent = sum(ex.notional("BTCUSDT", p, s) for _, p, s, _, _ in fills)
    got = sum(ex.base_atoms("BTCUSDT", s) for _, _, s, _, _ in fills)
    fees = sum(f for _, _, _, f, _ in fills)
    assert fees == sum(ex.fee(ex.base_atoms("BTCUSDT", s)) for _, _, s, _, _ in fills) > 0
    after = sim_balances(spot)
    assert after["USDT"].free == before["USDT"].free - spent
    assert after["BTC"].free == before["BTC"].free + got - fees
    assert await spot.gw.balances() == after
    assert spot.gw.order_count == 1 and spot.gw.used_weight_1m > 0  # usage headers read


async def test_ioc_partial_is_canceled_with_its_fills(spot: Rig) -> None:
    best_price, best_size = asks(spot)[0]
    o = order(spot, Side.BUY, best_price, best_size + 7)
    spot.gw.submit(o)
    status, reason = await spot.rec.final(o.client_id)
    assert (status, reason) == (OrderStatus.CANCELED, "expired")
    assert [(p, s) for _, p, s, _, _ in got_fills(spot, o.client_id)] == [(best_price, best_size)]
    assert got_fills(spot, o.client_id) == expected_fills(spot, o.client_id)


async def test_fok_not_fillable_is_canceled_with_nothing(spot: Rig) -> None:
    best_price, best_size = asks(spot)[0]
    o = order(spot, Side.BUY, best_price, best_size + 1, TimeInForce.FOK)
    before = sim_balances(spot)
    spot.gw.submit(o)
    assert (await spot.rec.final(o.client_id))[0] is OrderStatus.CANCELED
    assert got_fills(spot, o.client_id) == []
    assert ("ack", o.client_id) in spot.rec.events
    assert sim_balances(spot) == before


async def test_invalid_orders_are_rejected_with_the_venue_code(spot: Rig) -> None:
    best = asks(spot)[0][0]
    tiny = order(spot, Side.BUY, best, 1)  # 0.00001 BTC: under the 5 USDT notional
    spot.gw.submit(tiny)
    status, reason = await spot.rec.final(tiny.client_id)
    assert (status, reason) == (OrderStatus.REJECTED, "-1013: Filter failure: NOTIONAL")
    broke = order(spot, Side.SELL, best, 300_000)  # 3 BTC: more than the account has
    spot.gw.submit(broke)
    status, reason = await spot.rec.final(broke.client_id)
    assert status is OrderStatus.REJECTED
    assert reason == "-2010: Account has insufficient balance for requested action."
    assert spot.gw.counters.reject_codes == {"-1013": 1, "-2010": 1}


# -- query, open orders, cancel, balances ----------------------------------------------------


async def test_query_open_orders_cancel_and_balances(spot: Rig) -> None:
    ex = spot.sim.exchange
    ex.rest(KEY, "BTCUSDT", "BUY", "30000.00000000", "0.01000000", "resting-1")
    assert await spot.gw.query("no-such-order") is None
    known = await spot.gw.query("resting-1")
    assert known is not None and known.status is OrderStatus.ACKED
    assert (known.price, known.size, known.filled) == (3_000_000, 1000, 0)
    opened = await spot.gw.open_orders()
    assert [(o.client_id, o.status, o.venue_status) for o in opened] == [
        ("resting-1", OrderStatus.ACKED, "NEW")
    ]
    assert await spot.gw.balances() == sim_balances(spot)
    assert (await spot.gw.balances())["USDT"].locked == 300 * 10**18
    canceled = await spot.gw.cancel("resting-1", "BTCUSDT")
    assert canceled is not None and canceled.status is OrderStatus.CANCELED
    assert canceled.client_id == "resting-1"
    assert await spot.gw.cancel("resting-1", "BTCUSDT") is None
    assert await spot.gw.open_orders() == []
    assert await spot.gw.balances() == sim_balances(spot)
    assert "USDT" in sim_balances(spot) and sim_balances(spot)["USDT"].locked == 0


async def test_duplicate_client_id_of_an_open_order_is_refused(spot: Rig) -> None:
    spot.sim.exchange.rest(KEY, "BTCUSDT", "BUY", "30000.00", "0.01", "dup-1")
    o = order(spot, Side.BUY, asks(spot)[0][0], 100, client_id="dup-1")
    spot.gw.submit(o)
    assert await spot.rec.final("dup-1") == (OrderStatus.REJECTED, "-2010: Duplicate order sent.")


# -- lost replies ----------------------------------------------------------------------------


async def test_lost_reply_is_resolved_by_client_id_without_a_second_order(spot: Rig) -> None:
    spot.sim.faults.inject(Fault.ORDER_TIMEOUT)
    levels = asks(spot)
    o = order(spot, Side.BUY, levels[1][0], levels[0][1] + 1)
    spot.gw.submit(o)
    status, _ = await spot.rec.final(o.client_id)
    assert status is OrderStatus.FILLED  # never REJECTED
    assert spot.sim.faults.count(Fault.ORDER_TIMEOUT) == 1
    assert spot.gw.counters.retries == 1
    assert spot.sim.exchange.requests == 1  # the venue saw one placement, not two
    assert got_fills(spot, o.client_id) == expected_fills(spot, o.client_id)
    assert len(got_fills(spot, o.client_id)) == 2


class NoRetry(BinanceGateway):
    retry_budget: ClassVar[int] = 0


async def test_lost_reply_without_retries_leaves_it_to_query() -> None:
    async with _rig("spot", cls=NoRetry) as rig:
        rig.sim.faults.inject(Fault.ORDER_TIMEOUT)
        best_price, best_size = asks(rig)[0]
        o = order(rig, Side.BUY, best_price, best_size)
        rig.gw.submit(o)
        await until(lambda: rig.gw.counters.unknown == 1, 3.0)
        await asyncio.sleep(0.2)
        assert o.client_id not in rig.rec.done  # no final state without an answer
        truth = await rig.gw.query(o.client_id)
        assert truth is not None and truth.status is OrderStatus.FILLED
        assert truth.filled == best_size
        assert [(f.trade_id, f.price, f.size, f.fee, f.fee_asset) for f in truth.fills] == (
            expected_fills(rig, o.client_id)
        )
        assert sim_order(rig, o.client_id).status == "FILLED"


# -- rate limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "seconds", "banned"), [(Fault.ORDER_429, 1.0, False), (Fault.ORDER_418, 2.0, True)]
)
async def test_rate_limit_rejects_reports_and_blocks(
    spot: Rig, fault: Fault, seconds: float, banned: bool
) -> None:
    spot.sim.faults.inject(fault, seconds=seconds)
    o = order(spot, Side.BUY, asks(spot)[0][0], 100)
    spot.gw.submit(o)
    status, reason = await spot.rec.final(o.client_id)
    assert status is OrderStatus.REJECTED
    code = "418" if banned else "429"
    assert reason == f"{code}: binance /api/v3/order: HTTP {code}"
    assert spot.limits == [("binance", seconds, banned)]
    requests = spot.sim.stats.rest_requests
    nxt = order(spot, Side.BUY, asks(spot)[0][0], 100)
    spot.gw.submit(nxt)
    status, reason = await spot.rec.final(nxt.client_id)
    assert status is OrderStatus.REJECTED and "waiting out" in reason
    assert spot.sim.stats.rest_requests == requests  # refused here, nothing sent
    assert spot.sim.exchange.requests == 0


class _ThreeOrders(BinanceGateway):
    order_limit = 3  # as if the account's limit were 3 orders per 10 s


@pytest.mark.parametrize("ws", [False, True], ids=["rest", "ws"])
async def test_exhausted_order_count_pauses_sending_until_the_window_turns(ws: bool) -> None:
    """The usage the venue reports (X-MBX-ORDER-COUNT-10S, or the WS reply's rateLimits)
    reaching the limit stops orders here and tells the rate gates how long, before any 429;
    the simulator refuses a fourth order in the window with -1015 as Binance does."""
    async with _rig("spot", ws=ws, cls=_ThreeOrders) as rig:
        rig.sim.orders.order_limit = 3
        far = asks(rig)[0][0] // 2  # expires unfilled
        into = rig.sim.exchange.now_ms() % 10_000
        if into > 7_000:  # three orders must fall in one window: start in a fresh one
            await asyncio.sleep((10_000 - into) / 1000 + 0.05)
        for _ in range(3):
            o = order(rig, Side.BUY, far, 100)
            rig.gw.submit(o)
            assert (await rig.rec.final(o.client_id))[0] is OrderStatus.CANCELED
        assert rig.gw.counters.usage_pauses == 1
        [(venue, wait, banned)] = rig.limits
        assert venue == "binance" and not banned
        now = rig.gw.timestamp_ms()
        assert abs(wait - (10_000 - now % 10_000) / 1000) < 0.5  # to the window's end
        before = rig.sim.exchange.requests
        blocked = order(rig, Side.BUY, far, 100)
        rig.gw.submit(blocked)
        status, reason = await rig.rec.final(blocked.client_id)
        assert status is OrderStatus.REJECTED and "waiting out" in reason
        assert rig.sim.exchange.requests == before  # never sent


async def test_simulator_refuses_orders_past_its_window_limit(spot: Rig) -> None:
    spot.sim.orders.order_limit = 1
    ts = spot.sim.exchange.now_ms()
    params = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "IOC"),
        ("quantity", "0.00100"),
        ("price", SPOT.price.format(asks(spot)[0][0] // 2)),
    ]
    status, first = await signed_post(spot.sim, "/api/v3/order", params, SECRET, ts)
    assert status == 200, first
    status, second = await signed_post(spot.sim, "/api/v3/order", params, SECRET, ts)
    assert status == 429
    assert second == {
        "code": -1015,
        "msg": "Too many new orders; current limit is 1 orders per 10 SECOND.",
    }


# -- late and partial fills ------------------------------------------------------------------


async def test_late_fill_acks_first_then_fills_from_the_trades(spot: Rig) -> None:
    spot.sim.faults.inject(Fault.ORDER_LATE_FILL, seconds=0.2)
    levels = asks(spot)
    o = order(spot, Side.BUY, levels[1][0], levels[0][1] + 2)
    spot.gw.submit(o)
    await until(lambda: ("ack", o.client_id) in spot.rec.events, 2.0)
    assert got_fills(spot, o.client_id) == []
    assert (await spot.rec.final(o.client_id))[0] is OrderStatus.FILLED
    assert got_fills(spot, o.client_id) == expected_fills(spot, o.client_id)
    kinds = [k for k, c in spot.rec.events if c == o.client_id]
    assert kinds == ["ack", "fill", "fill", "done"]


async def test_partial_fill_fault(spot: Rig) -> None:
    spot.sim.faults.inject(Fault.ORDER_PARTIAL)
    best_price, best_size = asks(spot)[0]
    o = order(spot, Side.BUY, best_price, best_size)
    spot.gw.submit(o)
    assert (await spot.rec.final(o.client_id))[0] is OrderStatus.CANCELED
    assert [(p, s) for _, p, s, _, _ in got_fills(spot, o.client_id)] == [
        (best_price, max(1, best_size // 2))
    ]


# -- WebSocket API ---------------------------------------------------------------------------


async def test_ws_order_entry_fills(spot_ws: Rig) -> None:
    levels = asks(spot_ws)
    o = order(spot_ws, Side.BUY, levels[1][0], levels[0][1] + 3)
    spot_ws.gw.submit(o)
    assert (await spot_ws.rec.final(o.client_id))[0] is OrderStatus.FILLED
    assert spot_ws.gw.counters.ws_sent == 1 and spot_ws.gw.counters.rest_sent == 0
    assert got_fills(spot_ws, o.client_id) == expected_fills(spot_ws, o.client_id)


async def test_finished_orders_past_keep_done_are_forgotten(spot_ws: Rig) -> None:
    gw = spot_ws.gw
    gw.keep_done = 3  # type: ignore[misc]  # 10,000 in the daemon
    price = asks(spot_ws)[-1][0] * 2  # no ask that high: each IOC fills at once, whole
    ids = []
    for _ in range(5):
        o = order(spot_ws, Side.BUY, price, 100)
        ids.append(o.client_id)
        gw.submit(o)
        assert (await spot_ws.rec.final(o.client_id))[0] is OrderStatus.FILLED
    assert sorted(gw._tracked) == sorted(ids[2:]) and sorted(gw._sent_ids) == sorted(ids[2:])
    assert not gw._ws_pending
    # The venue still answers for a forgotten one, by its client id.
    state = await gw.query(ids[0])
    assert state is not None and state.status is OrderStatus.FILLED


async def test_ws_wrong_secret_is_refused() -> None:
    async with _rig("spot", ws=True, api_secret="not-the-secret") as rig:
        o = order(rig, Side.BUY, asks(rig)[0][0], 100)
        rig.gw.submit(o)
        status, reason = await rig.rec.final(o.client_id)
        assert (status, reason) == (
            OrderStatus.REJECTED,
            "-1022: Signature for this request is not valid.",
        )
        assert rig.gw.counters.ws_sent == 1 and rig.sim.exchange.requests == 0


async def test_ws_dropped_in_flight_ends_with_the_venue_truth(spot_ws: Rig) -> None:
    spot_ws.sim.faults.inject(Fault.ORDER_TIMEOUT)  # executed, never answered
    best_price, best_size = asks(spot_ws)[0]
    o = order(spot_ws, Side.BUY, best_price, best_size)
    spot_ws.gw.submit(o)
    await until(lambda: spot_ws.sim.exchange.requests == 1, 2.0)
    spot_ws.sim.disconnect_all()
    status, _ = await spot_ws.rec.final(o.client_id)
    assert status is OrderStatus.FILLED
    assert spot_ws.gw.counters.rest_sent == 1  # the REST re-send asked by client id first
    assert spot_ws.sim.exchange.requests == 1
    assert got_fills(spot_ws, o.client_id) == expected_fills(spot_ws, o.client_id)


async def test_ws_rate_limit_reports_the_wait_and_blocks(spot_ws: Rig) -> None:
    spot_ws.sim.faults.inject(Fault.ORDER_429, seconds=3)
    o = order(spot_ws, Side.BUY, asks(spot_ws)[0][0], 100)
    spot_ws.gw.submit(o)
    status, reason = await spot_ws.rec.final(o.client_id)
    assert status is OrderStatus.REJECTED and reason.startswith("-1003: Too much request weight")
    assert spot_ws.limits == [("binance", 3.0, False)]  # data.retryAfter - data.serverTime
    nxt = order(spot_ws, Side.BUY, asks(spot_ws)[0][0], 100)
    spot_ws.gw.submit(nxt)
    assert (await spot_ws.rec.final(nxt.client_id))[0] is OrderStatus.REJECTED
    assert spot_ws.gw.counters.ws_sent == 1 and spot_ws.sim.exchange.requests == 0


# -- malformed replies -----------------------------------------------------------------------


async def test_5xx_is_unknown_then_retried_by_client_id(spot: Rig) -> None:
    spot.sim.faults.inject(Fault.REST_5XX, status=503)
    o = order(spot, Side.BUY, asks(spot)[0][0], 100)
    spot.gw.submit(o)
    assert (await spot.rec.final(o.client_id))[0] is OrderStatus.FILLED
    assert spot.gw.counters.retries == 1 and spot.sim.exchange.requests == 1
    spot.sim.faults.inject(Fault.REST_5XX, status=500)
    with pytest.raises(UnknownOutcome) as err:
        await spot.gw.query("anything")
    assert str(err.value) == "binance GET /api/v3/order: HTTP 500"


def test_malformed_order_replies_are_one_line_errors() -> None:
    gw = BinanceGateway("binance", [SPOT], creds(), rest_url="http://127.0.0.1:9")
    full = {
        "symbol": "BTCUSDT",
        "orderId": 1,
        "clientOrderId": "c",
        "price": "1.00000000",
        "origQty": "0.00100000",
        "executedQty": "0.00000000",
        "status": "NEW",
        "side": "BUY",
    }
    assert gw._order_state(full, "t").status is OrderStatus.ACKED
    for broken in (
        {k: v for k, v in full.items() if k != "executedQty"},
        full | {"status": "MYSTERY"},
        full | {"price": "1.001"},
        full | {"fills": [{"price": "1.00"}]},
        [full],
        None,
    ):
        with pytest.raises(GatewayError) as err:
            gw._order_state(broken, "new order")
        assert "\n" not in str(err.value) and SECRET not in str(err.value)
    # A truncated WS API reply cannot be attributed: ignored, the watch takes it to REST.
    gw._ws_message(orjson.dumps({"id": "1", "status": 200, "result": full})[:40])


# -- USDⓈ-M ----------------------------------------------------------------------------------


async def test_usdm_fills_come_from_user_trades_and_positions(usdm: Rig) -> None:
    levels = asks(usdm)
    size = levels[0][1] + 1
    o = order(usdm, Side.BUY, levels[1][0], size)
    before = sim_balances(usdm)
    usdm.gw.submit(o)
    assert (await usdm.rec.final(o.client_id))[0] is OrderStatus.FILLED
    fills = got_fills(usdm, o.client_id)
    assert fills == expected_fills(usdm, o.client_id) and len(fills) == 2
    assert all(asset == "USDT" for *_, asset in fills)
    fees = sum(f for _, _, _, f, _ in fills)
    assert fees > 0
    assert sim_balances(usdm)["USDT"].free == before["USDT"].free - fees
    assert sizes(await usdm.gw.positions()) == {"BTCUSDT": size}
    assert await usdm.gw.balances() == sim_balances(usdm)
    sell = order(usdm, Side.SELL, usdm.sim.sources["BTCUSDT"].book.levels(BID)[-1][0], size + 5)
    usdm.gw.submit(sell)
    assert (await usdm.rec.final(sell.client_id))[0] is OrderStatus.FILLED
    assert sizes(await usdm.gw.positions()) == {"BTCUSDT": -5}


async def test_usdm_positions_carry_the_entry_value_within_its_error(usdm: Rig) -> None:
    """After real trades, positionRisk's entryPrice gives the position's entry value to
    within the bound its 8 places leave; the wallet moves by realized PnL and fees, and
    wallet - entry value is the spot-style cash (start - signed notional - fees)."""
    ex, sym = usdm.sim.exchange, "BTCUSDT"
    account = ex.accounts[KEY]
    start = account.free["USDT"]
    scale = AtomScale.of(USDM)
    levels = asks(usdm)
    size = levels[0][1] + 1
    buy = order(usdm, Side.BUY, levels[1][0], size)
    usdm.gw.submit(buy)
    assert (await usdm.rec.final(buy.client_id))[0] is OrderStatus.FILLED
    paid = sum(scale.notional(f.price, f.size) for f in usdm.rec.fills)
    fees = sum(f.fee for f in usdm.rec.fills)
    pos = (await usdm.gw.positions())[sym]
    assert pos.size == size
    # Two levels at different prices: the average has more than 8 places here.
    assert account.basis[sym] == paid
    text = ex.entry_price(KEY, sym)
    assert Decimal(text) != Decimal(paid) / scale.base(size)
    num, den = Decimal(text).as_integer_ratio()
    assert pos.entry_value == (2 * scale.base(size) * num + den) // (2 * den)
    assert pos.entry_error == -(-scale.base(size) // 10**8) + 1
    assert abs(pos.entry_value - paid) <= pos.entry_error
    wallet = (await usdm.gw.balances())["USDT"].total
    assert wallet == start - fees  # opening realizes nothing
    assert abs((wallet - pos.entry_value) - (start - paid - fees)) <= pos.entry_error

    # Sell through the long into a short of 5: the closed part realizes, the rest opens.
    sell = order(usdm, Side.SELL, usdm.sim.sources[sym].book.levels(BID)[-1][0], size + 5)
    usdm.gw.submit(sell)
    assert (await usdm.rec.final(sell.client_id))[0] is OrderStatus.FILLED
    sold = [f for f in usdm.rec.fills if f.client_id == sell.client_id]
    received = sum(scale.notional(f.price, f.size) for f in sold)
    fees += sum(f.fee for f in sold)
    venue_id = str(sim_order(usdm, sell.client_id).order_id)
    _, trades = await usdm.gw._call(
        "GET", "/fapi/v1/userTrades", [("symbol", sym), ("orderId", venue_id)]
    )
    realized = [atoms(t["realizedPnl"]) for t in trades]
    assert realized == [f.realized for f in sim_order(usdm, sell.client_id).fills]
    assert any(realized)
    pos = (await usdm.gw.positions())[sym]
    assert pos.size == -5 and pos.entry_value < 0
    assert abs(pos.entry_value - account.basis[sym]) <= pos.entry_error
    wallet = (await usdm.gw.balances())["USDT"].total
    assert wallet == start + sum(realized) - fees
    spot_cash = start - paid + received - fees
    assert abs((wallet - pos.entry_value) - spot_cash) <= pos.entry_error
    # The money fields beside it: the short marked at the book's mid.
    bid, ask = usdm.sim.sources[sym].book.levels(BID)[0][0], asks(usdm)[0][0]
    marked = (scale.notional(bid, -5) + scale.notional(ask, -5)) // 2
    _, (row,) = await usdm.gw._call("GET", "/fapi/v2/positionRisk", [("symbol", sym)])
    assert Decimal(row["markPrice"]) == Decimal(bid + ask) / 20  # 0.10 ticks
    assert atoms(row["notional"]) == marked
    assert atoms(row["unRealizedProfit"]) == marked - account.basis[sym]
    _, balances = await usdm.gw._call("GET", "/fapi/v2/balance", [])
    (usdt,) = [b for b in balances if b["asset"] == "USDT"]
    assert atoms(usdt["crossUnPnl"]) == marked - account.basis[sym]


def test_position_entry_value_and_its_error_from_the_shown_price() -> None:
    pos = Position.of(USDM, -1500, "100.10", "binance position: entryPrice")  # -1.5 BTC
    assert pos == Position(-1500, -atoms("150.15"), atoms("0.015") + 1)
    assert Position.of(USDM, 0, "0.0", "x") == Position(0, 0, 1)
    assert Position.of(USDM, 3, "1E+2", "x") == Position(3, atoms("0.3"), atoms("0.3") + 1)
    # 0.001 BTC (10**15 atoms) at 1.4 and 1.5 x 10**-15: the value rounds half up to the
    # atom; one unit of the 16th place is a tenth of an atom, rounded up.
    assert Position.of(USDM, 1, "0.0000000000000014", "x") == Position(1, 1, 2)
    assert Position.of(USDM, -1, "0.0000000000000015", "x") == Position(-1, -2, 2)
    for bad in ("", "abc", "NaN", "-1.0", "Infinity"):
        with pytest.raises(GatewayError) as err:
            Position.of(USDM, 1, bad, "binance position: entryPrice")
        assert str(err.value) == f"binance position: entryPrice {bad!r} is not a decimal"


class CannedPositionRisk(BinanceUsdmGateway):
    """A USDⓈ-M gateway whose positionRisk is the row given (the parsing under test)."""

    row: dict[str, Any]

    async def _call(
        self, method: str, path: str, params: list[tuple[str, str]], *, signed: bool = True
    ) -> tuple[Any, Any]:
        assert path == "/fapi/v2/positionRisk"
        return None, [self.row]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({}, "binance position: field 'entryPrice' missing or not text"),
        ({"entryPrice": 61000.5}, "binance position: field 'entryPrice' missing or not text"),
        ({"entryPrice": "61,000.5"}, "binance position: entryPrice '61,000.5' is not a decimal"),
    ],
)
async def test_usdm_position_without_a_usable_entry_price_is_one_line(
    row: dict[str, Any], message: str
) -> None:
    gw = CannedPositionRisk("binance_usdm", [USDM], creds(), rest_url="http://127.0.0.1:9")
    gw.row = {"symbol": "BTCUSDT", "positionAmt": "-0.002", **row}
    with pytest.raises(GatewayError) as err:
        await gw.positions()
    assert str(err.value) == message
    gw.row = {"symbol": "BTCUSDT", "positionAmt": "-0.002", "entryPrice": "61000.5"}
    assert await gw.positions() == {"BTCUSDT": Position(-2, -atoms("122.001"), atoms("0.0002") + 1)}


async def test_usdm_reject_codes_open_orders_and_cancel(usdm: Rig) -> None:
    ex = usdm.sim.exchange
    ex.rest(KEY, "BTCUSDT", "BUY", "30000.00", "0.010", "fut-rest")
    opened = await usdm.gw.open_orders()
    assert [(o.client_id, o.size) for o in opened] == [("fut-rest", 10)]
    dup = order(usdm, Side.BUY, asks(usdm)[0][0], 5, client_id="fut-rest")
    usdm.gw.submit(dup)
    assert await usdm.rec.final("fut-rest") == (
        OrderStatus.REJECTED,
        "-4116: ClientOrderId is duplicated.",
    )
    small = order(usdm, Side.BUY, asks(usdm)[0][0], 1)  # 0.001 BTC: under 100 USDT
    usdm.gw.submit(small)
    status, reason = await usdm.rec.final(small.client_id)
    assert status is OrderStatus.REJECTED and reason.startswith("-4164")
    canceled = await usdm.gw.cancel("fut-rest", "BTCUSDT")
    assert canceled is not None and canceled.client_id == "fut-rest"
    assert canceled.status is OrderStatus.CANCELED
    assert await usdm.gw.cancel("fut-rest", "BTCUSDT") is None
    fok = order(usdm, Side.BUY, asks(usdm)[0][0], asks(usdm)[0][1] + 1, TimeInForce.FOK)
    usdm.gw.submit(fok)
    assert (await usdm.rec.final(fok.client_id))[0] is OrderStatus.CANCELED
    assert got_fills(usdm, fok.client_id) == []


async def test_usdm_lost_reply_and_late_fill_end_with_the_trades(usdm: Rig) -> None:
    usdm.sim.faults.inject(Fault.ORDER_TIMEOUT)
    best_price, best_size = asks(usdm)[0]
    lost = order(usdm, Side.BUY, best_price, best_size)
    usdm.gw.submit(lost)
    assert (await usdm.rec.final(lost.client_id))[0] is OrderStatus.FILLED
    assert usdm.sim.exchange.requests == 1 and usdm.gw.counters.retries == 1
    assert got_fills(usdm, lost.client_id) == expected_fills(usdm, lost.client_id)
    usdm.sim.faults.inject(Fault.ORDER_LATE_FILL, seconds=0.15)
    late = order(usdm, Side.SELL, best_price - 1000, best_size)
    usdm.gw.submit(late)
    assert (await usdm.rec.final(late.client_id))[0] is OrderStatus.FILLED
    kinds = [k for k, c in usdm.rec.events if c == late.client_id]
    assert kinds[0] == "ack" and kinds[-1] == "done" and "fill" in kinds
    assert got_fills(usdm, late.client_id) == expected_fills(usdm, late.client_id)
    assert sizes(await usdm.gw.positions()) == {"BTCUSDT": 0}


async def test_usdm_failed_trades_fetch_is_retried_by_the_follow_queries(usdm: Rig) -> None:
    # The order POST carries its symbol in the body; the first request naming BTCUSDT in
    # its query string is the trades fetch that completes the reply's totals.
    usdm.sim.faults.inject(Fault.REST_5XX, symbol="BTCUSDT", status=502)
    best_price, best_size = asks(usdm)[0]
    o = order(usdm, Side.BUY, best_price, best_size)
    usdm.gw.submit(o)
    assert (await usdm.rec.final(o.client_id))[0] is OrderStatus.FILLED
    assert usdm.sim.faults.count(Fault.REST_5XX) == 1
    assert got_fills(usdm, o.client_id) == expected_fills(usdm, o.client_id)
    assert usdm.sim.exchange.requests == 1


# -- USDⓈ-M WebSocket API (/ws-fapi/v1) --------------------------------------------------------


@pytest.fixture
async def usdm_ws() -> AsyncIterator[Rig]:
    async with _rig("usdm", ws=True) as rig:
        yield rig


async def ws_place(
    sim: BinanceSim,
    params: dict[str, str | int],
    *,
    api_secret: str = SECRET,
    key: str = KEY,
) -> dict[str, Any]:
    """One signed ``order.place`` on a fresh connection to the simulator's WS API; the reply."""
    signed = binance_ws_signed_params(secret(api_secret), {**params, "apiKey": key})
    request = {"id": "req-1", "method": "order.place", "params": signed}
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.ws_api_url) as ws:
        await ws.send_str(orjson.dumps(request).decode())
        msg = await ws.receive(timeout=3.0)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        reply = orjson.loads(msg.data)
        assert isinstance(reply, dict)
        return reply


async def test_usdm_simulator_ws_api_shapes_and_security(usdm: Rig) -> None:
    sim = usdm.sim
    assert sim.ws_api_url.endswith("/ws-fapi/v1")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):  # spot's path is not on fapi
            await session.ws_connect(f"{sim.ws_url}/ws-api/v3")
    far_units = asks(usdm)[0][0] // 2
    far = USDM.price.format(far_units)
    now = sim.exchange.now_ms()
    params: dict[str, str | int] = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "IOC",
        "quantity": "0.010",
        "price": far,
        "newClientOrderId": "ws-raw-1",
        "newOrderRespType": "RESULT",
        "recvWindow": 5000,
        "timestamp": now,
    }
    reply = await ws_place(sim, params)
    assert (reply["id"], reply["status"]) == ("req-1", 200)
    result = reply["result"]
    assert result["clientOrderId"] == "ws-raw-1" and result["status"] == "EXPIRED"
    assert USDM.price.parse(result["price"]) == far_units
    assert (result["origQty"], result["executedQty"]) == ("0.010", "0.000")
    assert result["positionSide"] == "BOTH" and "fills" not in result  # totals only
    assert reply["rateLimits"] == [
        {
            "rateLimitType": "ORDERS",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": 1200,
            "count": 1,
        },
        {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": 2400,
            "count": sim._weight_used,
        },
    ]
    refused = [
        (
            await ws_place(sim, params | {"newClientOrderId": "x1"}, api_secret="wrong"),
            400,
            -1022,
            "Signature for this request is not valid.",
        ),
        (
            await ws_place(sim, params | {"newClientOrderId": "x2"}, key="nobody123"),
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        ),
        (
            await ws_place(sim, params | {"timestamp": now - 5200}),
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ),
        (
            await ws_place(sim, params | {"newOrderRespType": "FULL"}),
            400,
            -1130,
            "Data sent for parameter 'newOrderRespType' is not valid.",
        ),
    ]
    for got, status, code, msg in refused:
        assert (got["status"], got["error"]) == (status, {"code": code, "msg": msg})
        assert got["id"] == "req-1" and "result" not in got
    assert sim.exchange.requests == 1  # only the good one reached the matching engine


async def test_usdm_ws_order_entry_fills_exactly(usdm_ws: Rig) -> None:
    rig = usdm_ws
    levels = asks(rig)
    size = levels[0][1] + 1
    o = order(rig, Side.BUY, levels[1][0], size)
    before = sim_balances(rig)
    rig.gw.submit(o)
    assert await rig.rec.final(o.client_id) == (OrderStatus.FILLED, "filled")
    assert rig.gw.counters.ws_sent == 1 and rig.gw.counters.rest_sent == 0
    fills = got_fills(rig, o.client_id)
    # The WS result has totals only: the trades come from userTrades, each exactly.
    assert fills == expected_fills(rig, o.client_id)
    assert [(p, s) for _, p, s, _, _ in fills] == [levels[0], (levels[1][0], 1)]
    assert all(asset == "USDT" for *_, asset in fills)
    fees = sum(f for _, _, _, f, _ in fills)
    assert fees > 0 and sim_balances(rig)["USDT"].free == before["USDT"].free - fees
    assert [k for k, c in rig.rec.events if c == o.client_id] == ["ack", "fill", "fill", "done"]
    assert sizes(await rig.gw.positions()) == {"BTCUSDT": size}
    assert rig.sim.exchange.requests == 1


@pytest.mark.parametrize(
    ("api_secret", "key", "want"),
    [
        ("not-the-secret", KEY, "-1022: Signature for this request is not valid."),
        (SECRET, "nobody0123", "-2015: Invalid API-key, IP, or permissions for action."),
    ],
    ids=["bad-signature", "unknown-key"],
)
async def test_usdm_ws_refused_credentials(api_secret: str, key: str, want: str) -> None:
    async with _rig("usdm", ws=True, api_secret=api_secret, key=key) as rig:
        o = order(rig, Side.BUY, asks(rig)[0][0], 100)
        rig.gw.submit(o)
        assert await rig.rec.final(o.client_id) == (OrderStatus.REJECTED, want)
        assert rig.gw.counters.ws_sent == 1 and rig.gw.counters.rest_sent == 0
        assert rig.sim.exchange.requests == 0
        assert rig.gw.counters.unknown == 0


@pytest.mark.parametrize(
    ("fault", "seconds", "banned"), [(Fault.ORDER_429, 3.0, False), (Fault.ORDER_418, 2.0, True)]
)
async def test_usdm_ws_rate_limit_reports_the_wait_and_blocks(
    usdm_ws: Rig, fault: Fault, seconds: float, banned: bool
) -> None:
    rig = usdm_ws
    rig.sim.faults.inject(fault, seconds=seconds)
    o = order(rig, Side.BUY, asks(rig)[0][0], 100)
    rig.gw.submit(o)
    status, reason = await rig.rec.final(o.client_id)
    assert status is OrderStatus.REJECTED
    if banned:
        assert reason.startswith("-1003: Way too much request weight used; IP banned until")
    else:
        assert reason == (
            "-1003: Too much request weight used; current limit is 2400 request weight per "
            "1 MINUTE."
        )
    assert rig.limits == [("binance_usdm", seconds, banned)]  # data.retryAfter - serverTime
    assert 0 < rig.gw.blocked_for_s() <= seconds
    nxt = order(rig, Side.BUY, asks(rig)[0][0], 100)
    rig.gw.submit(nxt)
    status, reason = await rig.rec.final(nxt.client_id)
    assert status is OrderStatus.REJECTED and "waiting out" in reason
    assert rig.gw.counters.ws_sent == 1 and rig.sim.exchange.requests == 0


async def test_usdm_ws_lost_reply_ends_with_the_venue_truth(usdm_ws: Rig) -> None:
    rig = usdm_ws
    rig.sim.faults.inject(Fault.ORDER_TIMEOUT)  # executed, never answered on the socket
    levels = asks(rig)
    o = order(rig, Side.BUY, levels[1][0], levels[0][1] + 2)
    rig.gw.submit(o)
    assert (await rig.rec.final(o.client_id))[0] is OrderStatus.FILLED  # never REJECTED
    assert rig.sim.faults.count(Fault.ORDER_TIMEOUT) == 1
    # The watch timed out and went to REST with the same client id, which asked the venue
    # first: one placement at the venue, not two.
    assert rig.gw.counters.ws_sent == 1 and rig.gw.counters.rest_sent == 1
    assert rig.sim.exchange.requests == 1
    assert sim_order(rig, o.client_id).status == "FILLED"
    assert got_fills(rig, o.client_id) == expected_fills(rig, o.client_id)
    assert len(got_fills(rig, o.client_id)) == 2
    assert rig.gw.ws_ready  # the socket itself was fine: the next order uses it
    nxt = order(rig, Side.BUY, asks(rig)[0][0] // 2, 100)
    rig.gw.submit(nxt)
    assert (await rig.rec.final(nxt.client_id))[0] is OrderStatus.CANCELED
    assert rig.gw.counters.ws_sent == 2 and rig.gw.counters.rest_sent == 1


async def test_usdm_ws_dropped_in_flight_ends_with_the_venue_truth(usdm_ws: Rig) -> None:
    rig = usdm_ws
    rig.sim.faults.inject(Fault.ORDER_TIMEOUT)
    best_price, best_size = asks(rig)[0]
    o = order(rig, Side.BUY, best_price, best_size)
    rig.gw.submit(o)
    await until(lambda: rig.sim.exchange.requests == 1, 2.0)
    ws = rig.gw._ws
    assert ws is not None
    rig.sim.disconnect_all()  # the socket goes down with the order unanswered
    # Seen down, or already back: the first reconnect waits a random 0-0.5 s, and one
    # quicker than a poll never shows ws_ready False.
    await until(lambda: not rig.gw.ws_ready or ws.counters.reconnects >= 1, 2.0)
    assert (await rig.rec.final(o.client_id))[0] is OrderStatus.FILLED
    assert rig.gw.counters.rest_sent == 1 and rig.sim.exchange.requests == 1
    assert got_fills(rig, o.client_id) == expected_fills(rig, o.client_id)
    assert sizes(await rig.gw.positions()) == {"BTCUSDT": best_size}
    # The gateway reconnects and orders go over the new socket again.
    await until(lambda: rig.gw.ws_ready, 5.0)
    nxt = order(rig, Side.SELL, rig.sim.sources["BTCUSDT"].book.levels(BID)[-1][0], best_size)
    rig.gw.submit(nxt)
    assert (await rig.rec.final(nxt.client_id))[0] is OrderStatus.FILLED
    assert rig.gw.counters.ws_sent == 2 and rig.gw.counters.rest_sent == 1
    assert sizes(await rig.gw.positions()) == {"BTCUSDT": 0}


async def test_usdm_ws_clock_skew_resyncs_and_next_order_passes(usdm_ws: Rig) -> None:
    rig = usdm_ws
    rig.sim.exchange.skew_ms = 20_000  # the venue's clock runs 20 s ahead of ours
    first = order(rig, Side.BUY, asks(rig)[0][0], 100)
    rig.gw.submit(first)
    assert await rig.rec.final(first.client_id) == (
        OrderStatus.REJECTED,
        "-1021: Timestamp for this request is outside of the recvWindow.",
    )
    await until(lambda: abs(rig.gw.offset_ms - 20_000) < 500, 3.0)
    assert rig.gw.counters.clock_resyncs == 1 and rig.sim.exchange.requests == 0
    second = order(rig, Side.BUY, asks(rig)[0][0], 100)
    rig.gw.submit(second)
    assert (await rig.rec.final(second.client_id))[0] is OrderStatus.FILLED
    assert rig.gw.counters.ws_sent == 2 and rig.gw.counters.rest_sent == 0
    assert got_fills(rig, second.client_id) == expected_fills(rig, second.client_id)


async def test_usdm_ws_late_fill_and_partial_end_with_the_trades(usdm_ws: Rig) -> None:
    rig = usdm_ws
    rig.sim.faults.inject(Fault.ORDER_LATE_FILL, seconds=0.15)
    best_price, best_size = asks(rig)[0]
    late = order(rig, Side.BUY, best_price, best_size)
    rig.gw.submit(late)
    await until(lambda: ("ack", late.client_id) in rig.rec.events, 2.0)
    assert got_fills(rig, late.client_id) == []  # the WS answer said NEW
    assert (await rig.rec.final(late.client_id))[0] is OrderStatus.FILLED
    assert [k for k, c in rig.rec.events if c == late.client_id] == ["ack", "fill", "done"]
    assert got_fills(rig, late.client_id) == expected_fills(rig, late.client_id)
    rig.sim.faults.inject(Fault.ORDER_PARTIAL)
    best_price, best_size = asks(rig)[0]
    part = order(rig, Side.BUY, best_price, best_size)
    rig.gw.submit(part)
    assert (await rig.rec.final(part.client_id))[0] is OrderStatus.CANCELED
    assert [(p, s) for _, p, s, _, _ in got_fills(rig, part.client_id)] == [
        (best_price, max(1, best_size // 2))
    ]
    assert got_fills(rig, part.client_id) == expected_fills(rig, part.client_id)
    assert rig.gw.counters.ws_sent == 2 and rig.gw.counters.rest_sent == 0


async def test_usdm_ws_exhausted_order_window_pauses_sending() -> None:
    """The WS reply's ORDERS count (1-minute window on USDⓈ-M) reaching its limit stops
    orders here until the window turns and tells the rate gates, before any 429."""
    async with _rig("usdm", ws=True) as rig:
        rig.sim.orders.order_limit = 3  # as if the account's limit were 3 orders a minute
        far = asks(rig)[0][0] // 2
        into = rig.sim.exchange.now_ms() % 60_000
        if into > 57_000:  # three orders must fall in one window: start in a fresh one
            await asyncio.sleep((60_000 - into) / 1000 + 0.05)
        for _ in range(3):
            o = order(rig, Side.BUY, far, 100)
            rig.gw.submit(o)
            assert (await rig.rec.final(o.client_id))[0] is OrderStatus.CANCELED
        assert rig.gw.counters.usage_pauses == 1 and rig.gw.counters.ws_sent == 3
        [(venue, wait, banned)] = rig.limits
        assert venue == "binance_usdm" and not banned
        now = rig.gw.timestamp_ms()
        assert abs(wait - (60_000 - now % 60_000) / 1000) < 0.5  # to the window's end
        before = rig.sim.exchange.requests
        blocked = order(rig, Side.BUY, far, 100)
        rig.gw.submit(blocked)
        status, reason = await rig.rec.final(blocked.client_id)
        assert status is OrderStatus.REJECTED and "waiting out" in reason
        assert rig.sim.exchange.requests == before and rig.gw.counters.ws_sent == 3


async def test_usdm_orders_go_over_rest_while_the_socket_is_not_ready(usdm: Rig) -> None:
    """An order WebSocket that never connects (here: spot's path, which fapi does not
    serve) leaves order entry on REST, with the same exact fills."""
    gw = BinanceUsdmGateway(
        "binance_usdm",
        [USDM],
        creds(),
        rest_url=usdm.sim.rest_url,
        ws_url=f"{usdm.sim.ws_url}/ws-api/v3",
        timeout_s=1.0,
    )
    rec = Recorder()
    gw.set_listener(rec)
    await gw.start()
    try:
        await asyncio.sleep(0.2)  # the handshake has been refused by now
        assert not gw.ws_ready
        best_price, best_size = asks(usdm)[0]
        o = order(usdm, Side.BUY, best_price, best_size)
        gw.submit(o)
        assert (await rec.final(o.client_id))[0] is OrderStatus.FILLED
        assert gw.counters.ws_sent == 0 and gw.counters.rest_sent == 1
        got = [(f.trade_id, f.price, f.size, f.fee, f.fee_asset) for f in rec.fills]
        assert got == expected_fills(usdm, o.client_id)
    finally:
        await gw.close()
