"""Order entry per venue gateway, over loopback to the venue's simulator: REST vs WebSocket.

For each venue whose gateway and simulator order entry exist, one gateway per transport
sends ``--orders`` IOC limit orders one after another (a buy far below the market, so each
expires unfilled and balances never run out) and the run prints, in µs, p50/p99/max of:

* **write**: from calling ``submit`` to the order's bytes being written. WebSocket: the
  frame is built, signed and written inside ``submit``, so this is ``submit`` itself.
  REST: until aiohttp reports the request body (or headers) sent, which includes the
  loop turn the request task waits for; the venue's placement POST only.
* **ack**: from calling ``submit`` to the venue's answer being parsed and reported (the
  round trip to the simulator).

The simulator runs in a process of its own, pinned to the other CPU (the benchmark to the
first; ``--no-pin`` to leave both free), as a venue is elsewhere: in the same process its
work between two orders (450-530 µs for OKX, Bybit and Kraken) went through the caches the
gateway's next order then found cold.

An order-count limit the venue reports (Binance spot: 100 orders per 10 s, USDⓈ-M 1200 a
minute; the gateway pauses sending when the count reaches it) is waited out between
orders, untimed. An order that ends REJECTED stops the run: a gateway refusing orders
locally while its pause lasts would otherwise pass for a very fast round trip.

Reference in the same run: a bare aiohttp POST of the same size to the same simulator
path with no signing and no parsing (its round trip), which is the floor any REST gateway
pays on this machine.

This prints figures. It is not a timed test and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from types import SimpleNamespace
from typing import Any

import aiohttp

from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways.base import LiveGateway, VenueCredentials
from arbengine.orders import Fill, Order, OrderStatus, Side, TimeInForce
from bench._paths import ensure_repo_on_path

KEY = "benchKey0123"
BENCH_CPU, SIM_CPU = 0, 1


def _secret(value: str) -> Secret:
    return Secret(value, CredentialRef(source="env", name="BENCH"))


@dataclass
class Venue:
    """How to run one venue: its simulator, gateway, instrument and placement path."""

    name: str
    sim: Callable[[], AbstractAsyncContextManager[Any]]
    gateway: str  # "module:Class"
    instrument: Instrument
    place_path: str  # the POST that places an order (traced for "write")
    balances: dict[str, str]
    ws_url: Callable[[Any], str | None] = lambda sim: None
    passphrase: str | None = None
    secret: Callable[[], str] = lambda: "bench-secret-0123456789"


def _ec_pem() -> str:
    """A fresh ES256 key in PEM, as Coinbase CDP issues them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _venues() -> list[Venue]:
    from arbengine.venues.sim import BinanceSim, CoinbaseSim, KrakenSim, OkxSim
    from arbengine.venues.sim.bybit import BybitSim

    usdt = {"USDT": "10000000", "BTC": "100"}
    usd = {"USD": "10000000", "BTC": "100"}
    return [
        Venue(
            "binance",
            lambda: BinanceSim(market="spot", seed=3, interval_s=0.1),
            "arbengine.gateways.binance:BinanceGateway",
            Instrument("binance", "BTCUSDT", "BTC", "USDT", "0.01", "0.00001", min_size="0.00001"),
            "/api/v3/order",
            usdt,
            ws_url=lambda sim: sim.ws_api_url,
        ),
        Venue(
            "binance_usdm",
            lambda: BinanceSim(market="usdm", seed=3, interval_s=0.1),
            "arbengine.gateways.binance:BinanceUsdmGateway",
            Instrument(
                "binance_usdm",
                "BTCUSDT",
                "BTC",
                "USDT",
                "0.10",
                "0.001",
                min_size="0.001",
                derivative=True,
            ),
            "/fapi/v1/order",
            usdt,
            ws_url=lambda sim: sim.ws_api_url,  # /ws-fapi/v1
        ),
        Venue(
            "okx",
            lambda: OkxSim(["BTC-USDT"], seed=3, interval_s=0.1),
            "arbengine.gateways.okx:OkxGateway",
            Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.1", "0.00000001", min_size="0.00001"),
            "/api/v5/trade/order",
            usdt,
            ws_url=lambda sim: sim.private_ws_url,
            passphrase="bench-pass",
        ),
        Venue(
            "bybit",
            lambda: BybitSim(["BTCUSDT"], category="spot", seed=3, interval_s=0.1),
            "arbengine.gateways.bybit:BybitGateway",
            Instrument("bybit", "BTCUSDT", "BTC", "USDT", "0.01", "0.000001"),
            "/v5/order/create",
            usdt,
            ws_url=lambda sim: sim.trade_ws_url,
        ),
        Venue(
            "kraken",
            lambda: KrakenSim(["BTC/USD"], seed=3, interval_s=0.1),
            "arbengine.gateways.kraken:KrakenGateway",
            Instrument("kraken", "BTC/USD", "BTC", "USD", "0.1", "0.00000001", min_size="0.00005"),
            "/0/private/AddOrder",
            usd,
            ws_url=lambda sim: sim.ws_auth_url,
            secret=lambda: base64.b64encode(bytes(range(64))).decode(),
        ),
        Venue(
            "coinbase",
            lambda: CoinbaseSim(["BTC-USD"], seed=3, interval_s=0.1, idle_close_s=None),
            "arbengine.gateways.coinbase:CoinbaseGateway",
            Instrument("coinbase", "BTC-USD", "BTC", "USD", "0.01", "0.00000001"),
            "/api/v3/brokerage/orders",
            usd,
            secret=_ec_pem,
        ),
    ]


@dataclass
class Listener:
    acks: dict[str, int] = field(default_factory=dict)
    done: dict[str, OrderStatus] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def on_ack(self, order: Order, ts_ns: int) -> None:
        self.acks[order.client_id] = time.perf_counter_ns()
        self.event.set()

    def on_fill(self, order: Order, fill: Fill) -> None:
        pass

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        self.acks.setdefault(order.client_id, time.perf_counter_ns())
        self.done[order.client_id] = status
        self.reasons[order.client_id] = reason
        self.event.set()


def _tracer(path: str, sink: list[int]) -> aiohttp.TraceConfig:
    """Stamps the moment the placement request's body (or headers) went out."""

    async def sent(_s: aiohttp.ClientSession, _c: SimpleNamespace, params: Any) -> None:
        if params.method == "POST" and params.url.path == path:
            sink.append(time.perf_counter_ns())

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(sent)
    trace.on_request_headers_sent.append(sent)
    return trace


def _cls(dotted: str) -> type[LiveGateway]:
    import importlib

    module, name = dotted.split(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, LiveGateway)):
        raise TypeError(f"{dotted} is not a LiveGateway")
    return cls


@dataclass(frozen=True)
class SimUrls:
    """Where the simulator process listens, and its book's best bid (price text)."""

    rest: str
    ws: str | None
    best_bid: str


def _sim_main(pipe: Any, name: str, secret: str, cpu: int | None) -> None:
    """Entry of the simulator process (multiprocessing, spawn): one venue's simulator
    with the benchmark's account, until the parent writes to (or closes) the pipe."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    import uvloop

    uvloop.run(_serve_sim(pipe, name, secret))


async def _serve_sim(pipe: Any, name: str, secret: str) -> None:
    try:
        v = next(v for v in _venues() if v.name == name)
        async with v.sim() as sim:
            sim.exchange.add_account(KEY, secret, v.passphrase, v.balances)
            book = sim.true_book(v.instrument.symbol)
            assert book.best_bid is not None
            stop = asyncio.Event()
            asyncio.get_running_loop().add_reader(pipe.fileno(), stop.set)
            pipe.send(("ready", SimUrls(sim.rest_url, v.ws_url(sim), book.best_bid[0])))
            await stop.wait()
    except Exception as exc:  # reported to the parent as one line
        pipe.send(("error", f"{name} simulator: {type(exc).__name__}: {exc}"))


@contextlib.contextmanager
def _sim_process(v: Venue, secret: str, pin: bool) -> Iterator[SimUrls]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_sim_main, args=(child, v.name, secret, SIM_CPU if pin else None), daemon=True
    )
    proc.start()
    child.close()
    try:
        if not parent.poll(60):
            raise RuntimeError(f"{v.name}: the simulator process did not start in 60 s")
        kind, payload = parent.recv()
        if kind != "ready":
            raise RuntimeError(payload)
        yield payload
    finally:
        with contextlib.suppress(OSError):
            parent.send(("stop",))
        parent.close()
        proc.join(10)
        if proc.is_alive():
            proc.kill()


@asynccontextmanager
async def _gateway(
    v: Venue, urls: SimUrls, secret: str, ws: bool, listener: Listener, sink: list[int]
) -> AsyncIterator[LiveGateway]:
    creds = VenueCredentials(
        _secret(KEY), _secret(secret), _secret(v.passphrase) if v.passphrase else None
    )
    gw = _cls(v.gateway)(
        v.name,
        [v.instrument],
        creds,
        rest_url=urls.rest,
        ws_url=urls.ws if ws else None,
        trace_configs=[_tracer(v.place_path, sink)],
    )
    gw.set_listener(listener)
    await gw.start()
    try:
        if ws:
            deadline = time.monotonic() + 5
            while not gw.ws_ready:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{v.name}: order WebSocket not ready in 5 s")
                await asyncio.sleep(0.01)
        yield gw
    finally:
        await gw.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(label: str, values_ns: list[int]) -> str:
    us = [v / 1000 for v in values_ns]
    return (
        f"  {label:<26} n={len(us):>5}  p50 {statistics.median(us):9.1f}  "
        f"p99 {_pct(us, 0.99):9.1f}  max {max(us):9.1f} µs"
    )


async def _run_gateway(v: Venue, urls: SimUrls, secret: str, ws: bool, orders: int) -> list[str]:
    listener = Listener()
    sink: list[int] = []
    # Half the best bid: never fills. The size is worth at least 200 quote at that price,
    # above every venue's minimum notional (Binance spot 5, USDⓈ-M 100), or the venue
    # would refuse every order and the figures would time refusals.
    inst = v.instrument
    price = inst.price.parse(urls.best_bid) // 2
    worth = Decimal(200) / Decimal(inst.price.format(price))
    lots = int((worth / Decimal(inst.size.step)).to_integral_value(rounding=ROUND_CEILING))
    size = max(inst.min_size * 10 or inst.lot * 1000, lots)
    writes: list[int] = []
    acks: list[int] = []
    async with _gateway(v, urls, secret, ws, listener, sink) as gw:
        for i in range(orders + orders // 10):  # the first tenth warms up
            cid = f"b{int(ws)}x{i}x{time.monotonic_ns() % 1_000_000}"
            order = Order(cid, "bench", v.instrument, Side.BUY, price, size, TimeInForce.IOC)
            wait_s = gw.blocked_for_s()
            if wait_s > 0:  # the venue's order-count window is full: wait for the next
                await asyncio.sleep(wait_s + 0.05)
            listener.event.clear()
            sink.clear()
            t0 = time.perf_counter_ns()
            gw.submit(order)
            t_submit = time.perf_counter_ns()
            while cid not in listener.done:
                await asyncio.wait_for(listener.event.wait(), 5)
                listener.event.clear()
            if listener.done[cid] is OrderStatus.REJECTED:
                raise RuntimeError(f"{v.name}: order {cid} rejected: {listener.reasons[cid]}")
            if i < orders // 10:
                continue
            wrote = t_submit if ws or not sink else sink[0]
            if not ws and not sink:
                raise RuntimeError(f"{v.name}: the placement request was never traced")
            writes.append(wrote - t0)
            acks.append(listener.acks[cid] - t0)
    mode = "WS" if ws else "REST"
    return [_row(f"{mode} write", writes), _row(f"{mode} ack (round trip)", acks)]


async def _run_bare(v: Venue, urls: SimUrls, orders: int) -> str:
    """The floor: a same-sized unsigned POST to the same path, reply read, not parsed."""
    body = b"x" * 200
    times: list[int] = []
    async with aiohttp.ClientSession() as session:
        url = f"{urls.rest}{v.place_path}"
        for i in range(orders + orders // 10):
            t0 = time.perf_counter_ns()
            async with session.post(url, data=body) as resp:
                await resp.read()
            if i >= orders // 10:
                times.append(time.perf_counter_ns() - t0)
    return _row("bare aiohttp POST (floor)", times)


async def _bench(names: list[str], orders: int, pin: bool) -> int:
    pin = pin and len(os.sched_getaffinity(0)) >= 2
    where = f"CPU {SIM_CPU}, the benchmark on CPU {BENCH_CPU}" if pin else "any CPU"
    print(f"each simulator in its own process on {where}")
    before = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {BENCH_CPU})
    try:
        for v in _venues():
            if names and v.name not in names:
                continue
            print(f"\n{v.name}: {orders} IOC orders per transport, one at a time")
            secret = v.secret()
            with _sim_process(v, secret, pin) as urls:
                for line in await _run_gateway(v, urls, secret, False, orders):
                    print(line, flush=True)
                if urls.ws is not None:
                    for line in await _run_gateway(v, urls, secret, True, orders):
                        print(line, flush=True)
                print(await _run_bare(v, urls, orders), flush=True)
    finally:
        os.sched_setaffinity(0, before)
    return 0


def main(argv: list[str] | None = None) -> int:
    ensure_repo_on_path()
    ap = argparse.ArgumentParser(prog="python -m bench gateways", description=__doc__)
    ap.add_argument("--orders", type=int, default=500, help="timed orders per transport")
    ap.add_argument("--venue", action="append", default=[], help="only this venue (repeatable)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin benchmark/simulator CPUs")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.venue) - {v.name for v in _venues()})
    if unknown:
        ap.error(f"unknown venue {', '.join(unknown)}; one of {[v.name for v in _venues()]}")
    if args.orders < 10:
        ap.error("--orders must be at least 10")
    try:
        import uvloop

        runner: Callable[..., int] = uvloop.run
    except ImportError:
        runner = asyncio.run
    return int(runner(_bench(args.venue, args.orders, not args.no_pin)))


if __name__ == "__main__":
    raise SystemExit(main())
