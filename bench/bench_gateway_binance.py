"""Binance spot order entry: REST vs WebSocket API, against the simulator on loopback.

Per order, two figures:

* "submit": the time ``BinanceGateway.submit`` takes, i.e. the request built and signed
  (HMAC-SHA256) and, over the WebSocket API, the frame written to the socket. Over REST the
  bytes go out on the loop's next turn, which this cannot include.
* "round trip": from just before ``submit`` to the final state reported to the listener
  (``on_done``), through the simulator's signature, timestamp and matching checks.

The orders are IOC buys far under the market (they expire unfilled, so balances never run
out), one at a time. Both the gateway and the simulator run in this process on one event
loop, so the round trip includes the simulator's own work. It prints figures; it asserts
nothing about speed.

    python -m bench.bench_gateway_binance [--orders 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways.base import VenueCredentials
from arbengine.gateways.binance import BinanceGateway
from arbengine.orders import Fill, Order, OrderStatus, Side, TimeInForce
from arbengine.venues.sim.binance import BinanceSim
from arbengine.venues.sim.model import BID

KEY = "benchKey0123456789"
SECRET = "benchSecret0123456789"
INST = Instrument("binance", "BTCUSDT", "BTC", "USDT", tick="0.01", lot="0.00001")


class _Done:
    def __init__(self) -> None:
        self.waiter: asyncio.Future[int] | None = None

    def on_ack(self, order: Order, ts_ns: int) -> None:
        pass

    def on_fill(self, order: Order, fill: Fill) -> None:
        pass

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        if status is not OrderStatus.CANCELED:
            raise RuntimeError(f"bench order {order.client_id} ended {status}: {reason}")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(time.monotonic_ns())


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def _run(orders: int, ws: bool) -> tuple[list[int], list[int]]:
    secret = Secret(SECRET, CredentialRef(source="env", name="BENCH_SECRET"))
    key = Secret(KEY, CredentialRef(source="env", name="BENCH_KEY"))
    async with BinanceSim(market="spot", seed=1, ping_interval_s=None) as sim:
        sim.pause()
        sim.exchange.add_account(KEY, SECRET, balances={"USDT": "1000000"})
        price = sim.sources["BTCUSDT"].book.levels(BID)[-1][0] - 100_000  # 1000 USDT under
        gw = BinanceGateway(
            "binance",
            [INST],
            VenueCredentials(key, secret),
            rest_url=sim.rest_url,
            ws_url=sim.ws_api_url if ws else None,
        )
        listener = _Done()
        gw.set_listener(listener)
        async with gw:
            while ws and not gw.ws_ready:
                await asyncio.sleep(0.01)
            submit_ns: list[int] = []
            round_ns: list[int] = []
            loop = asyncio.get_running_loop()
            for i in range(orders):
                order = Order(
                    f"b{int(ws)}-{i}", "bench", INST, Side.BUY, price, 100, TimeInForce.IOC
                )
                listener.waiter = loop.create_future()
                t0 = time.monotonic_ns()
                sent = gw.submit(order)
                submit_ns.append(sent - t0)
                done = await asyncio.wait_for(listener.waiter, 5.0)
                round_ns.append(done - t0)
            if ws and gw.counters.rest_sent:
                raise RuntimeError("WS bench orders went over REST")
    return submit_ns, round_ns


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_gateway_binance", description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=300)
    args = ap.parse_args(argv)
    print(f"binance spot order entry, {args.orders} IOC orders each way, loopback simulator")
    print(f"{'path':<6} {'submit p50':>11} {'p99':>8} {'round trip p50':>15} {'p99':>8}  (us)")
    for name, ws in (("REST", False), ("WS", True)):
        submit_ns, round_ns = asyncio.run(_run(args.orders, ws))
        print(
            f"{name:<6} {_pct(submit_ns, 0.5):>11.1f} {_pct(submit_ns, 0.99):>8.1f} "
            f"{_pct(round_ns, 0.5):>15.1f} {_pct(round_ns, 0.99):>8.1f}"
        )
        mean = statistics.fmean(round_ns) / 1000
        print(f"{'':<6} round trip mean {mean:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
