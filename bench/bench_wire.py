"""The order wire: ns per WebSocket order request, compiled templates against the Python builder.

For each venue whose gateway enters orders over a WebSocket (Binance spot and
USDⓈ-M, signed per request; OKX; Bybit; Kraken), ``--orders`` distinct IOC orders (random prices,
sizes, client ids, both sides) are rendered:

* **compiled**: ``OrderEntry.render`` (``arbengine/gateways/_wire.pyx``): the request looked
  up by instrument, side and time in force, the venue's per-order rules applied (venue
  clock, OKX's expiry and clOrdId escape, the record a re-send checks), the slots filled in
  C, and for Binance the payload signed with HMAC-SHA256 on OpenSSL's SHA-256 contexts;
* **Python**: what the gateways did per order before (``tests/reference/order_frames.py``):
  a dict in the venue's field order, ``Grid.format`` twice, ``orjson.dumps``, and for
  Binance ``signing.binance_ws_signed_params`` (a sorted ``k=v&`` payload and ``hmac.new``).

Both must give the same bytes for every order before anything is timed. The HMAC alone
(``HmacSha256`` against ``hmac.new(...).hexdigest()`` on a payload of the same size) and a
whole ``submit`` of the WebSocket path against a socket that takes the bytes without a
system call are printed too. Figures are warm (the same code over and over); the engine
benchmark (``python -m bench engine``) has the cache-cold cost inside a live arb.

This prints figures. It is not a timed test and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import uvloop

from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways._wire import HmacSha256
from arbengine.gateways.base import LiveGateway, VenueCredentials
from arbengine.gateways.binance import BinanceGateway, BinanceUsdmGateway
from arbengine.gateways.bybit import BybitGateway
from arbengine.gateways.kraken import KrakenGateway
from arbengine.gateways.okx import OkxGateway
from arbengine.orders import Order, Side, TimeInForce
from bench._paths import ensure_repo_on_path

WALL_NS = 1_763_800_000_123_456_789
REF = CredentialRef(source="env", name="BENCH")
# Binance's documentation key pair: a 64-character key and secret, as the venue issues.
KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def _gateway(venue: str) -> LiveGateway:
    creds = VenueCredentials(Secret(KEY, REF), Secret(SECRET, REF), Secret("bench-pass", REF))
    # An order WebSocket named (never connected: the bench writes to a null transport).
    kw: dict[str, Any] = {
        "rest_url": "http://127.0.0.1:9",
        "ws_url": "ws://127.0.0.1:9",
        "wall": lambda: WALL_NS,
    }
    if venue == "binance":
        inst = Instrument("binance", "BTCUSDT", "BTC", "USDT", "0.01", "0.00001")
        return BinanceGateway(venue, [inst], creds, **kw)
    if venue == "binance_usdm":
        inst = Instrument(
            "binance_usdm", "BTCUSDT", "BTC", "USDT", "0.10", "0.001", derivative=True
        )
        return BinanceUsdmGateway(venue, [inst], creds, **kw)
    if venue == "okx":
        inst = Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.1", "0.00000001")
        return OkxGateway(venue, [inst], creds, **kw)
    if venue == "kraken":
        inst = Instrument("kraken", "BTC/USD", "BTC", "USD", "0.1", "0.00000001")
        secret = base64.b64encode(SECRET.encode()).decode()  # Kraken's secrets are base64
        kraken = KrakenGateway(
            venue, [inst], VenueCredentials(Secret(KEY, REF), Secret(secret, REF)), **kw
        )
        kraken._token = "WW91ciBhdXRoZW50aWNhdGlvbiB0b2tlbiBnb2VzIGhlcmUu"
        return kraken
    inst = Instrument("bybit", "BTCUSDT", "BTC", "USDT", "0.01", "0.000001")
    return BybitGateway(venue, [inst], creds, **kw)


def _orders(gw: LiveGateway, n: int, seed: int) -> list[Order]:
    rng = random.Random(seed)
    inst = next(iter(gw.instruments.values()))
    return [
        Order(
            f"a{rng.randrange(10**6)}-{i}-{'B' if i % 2 else 'S'}",
            "arb",
            inst,
            Side.BUY if i % 2 else Side.SELL,
            rng.randrange(10**6, 10**8),
            rng.randrange(1, 10**6),
            TimeInForce.IOC,
        )
        for i in range(n)
    ]


def _per_call(fn: Callable[[int], object], n: int, runs: int) -> float:
    """Median over ``runs`` of the mean ns per call of ``fn(0..n-1)``."""
    per_run = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        for i in range(n):
            fn(i)
        per_run.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(per_run)


class _NullTransport:
    """Takes a frame like picows' ``WSTransport`` and drops it (no system call)."""

    def send_reuse_external_bytearray(self, *_args: object) -> None:
        pass


def _submit_ns(gw: LiveGateway, orders: list[Order], runs: int) -> float:
    """ns per ``LiveGateway.submit`` over the WebSocket path, bytes dropped."""

    async def go() -> float:
        results = []
        for run in range(runs):
            fresh = [
                Order(f"{o.client_id}-{run}", o.arb_id, o.instrument, o.side, o.price, o.size)
                for o in orders
            ]
            gw._entry.transport = _NullTransport()
            gw._ws_ok = True
            t0 = time.perf_counter_ns()
            for o in fresh:
                gw.submit(o)
            results.append((time.perf_counter_ns() - t0) / len(fresh))
            gw._tracked.clear()
            gw._ws_pending.clear()
        return statistics.median(results)

    return uvloop.run(go())  # the daemon's loop


def _cold_submit_ns(gw: LiveGateway, orders: list[Order], warm: bool) -> float:
    """Median ns of one ``submit`` after the caches were flushed (a 64 MiB read, twice the
    L3 here: what a few hundred book updates do between two arbs), with or without a
    ``warm`` of the same instrument and side right before it."""
    flush = bytes(64 << 20)

    async def go() -> float:
        gw._entry.transport = _NullTransport()
        gw._ws_ok = True
        times = []
        for o in orders:
            order = Order(f"c{o.client_id}", o.arb_id, o.instrument, o.side, o.price, o.size)
            dry = Order("warm-1", "warm", o.instrument, o.side, 1, 1)
            flush.find(b"\x01")  # memchr over all of it: every line through the caches
            if warm and gw.warm is not None:
                gw.warm(dry)
            t0 = time.perf_counter_ns()
            gw.submit(order)
            times.append(time.perf_counter_ns() - t0)
        gw._tracked.clear()
        gw._ws_pending.clear()
        return statistics.median(times)

    return uvloop.run(go())


def _venue_row(
    venue: str, build: Callable[[Any, Order, str, int], bytes], n: int, runs: int, cold: int
) -> str:
    gw = _gateway(venue)
    orders = _orders(gw, n, seed=len(venue))
    ids = [str(i + 1) for i in range(len(orders))]
    ts = WALL_NS // 1_000_000 + (gw.recv_window_ms if venue == "okx" else 0)
    sizes = []
    for order, rid in zip(orders, ids, strict=True):
        got = gw._entry.render(order, rid)
        want = build(gw, order, rid, ts)
        if got != want:
            return f"CHECK FAILED ({venue}, {order.client_id}): {got!r} != {want!r}"
        sizes.append(len(got))
    compiled = _per_call(lambda i: gw._entry.render(orders[i], ids[i]), n, runs)
    python = _per_call(lambda i: build(gw, orders[i], ids[i], ts), n, runs)
    submit = _submit_ns(gw, orders, runs)
    flushed = _cold_submit_ns(gw, orders[:cold], warm=False)
    warmed = _cold_submit_ns(gw, orders[:cold], warm=True)
    size = statistics.median(sizes)
    return (
        f"{venue:<14}{size:>7.0f}{compiled:>10.0f}ns{python:>10.0f}ns"
        f"{python / compiled:>7.1f}x{submit:>10.0f}ns{flushed:>10.0f}ns{warmed:>10.0f}ns"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench wire", description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=20_000, help="distinct orders per venue")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cold", type=int, default=200, help="submits timed after a cache flush")
    args = ap.parse_args(argv)
    if args.orders < 1 or args.runs < 1 or args.cold < 1:
        ap.error("--orders, --runs and --cold must be at least 1")
    ensure_repo_on_path()
    from tests.reference import order_frames

    reference: dict[str, Callable[[Any, Order, str, int], bytes]] = {
        "binance": order_frames.binance,
        "binance_usdm": order_frames.binance,
        "okx": order_frames.okx,
        "bybit": order_frames.bybit,
        "kraken": order_frames.kraken,
    }
    print("== order wire: ns per WebSocket order request (median of runs, warm) ==")
    print(
        f"{'venue':<14}{'bytes':>7}{'compiled':>12}{'Python':>12}{'ratio':>8}{'submit':>12}"
        f"{'flushed':>12}{'+warm':>12}"
    )
    for venue, build in reference.items():
        row = _venue_row(venue, build, args.orders, args.runs, min(args.cold, args.orders))
        print(row)
        if row.startswith("CHECK FAILED"):
            return 1
    key = SECRET.encode()
    signer = HmacSha256(key)
    payload = b"x" * 330  # a Binance order payload's length
    fast = _per_call(lambda _i: signer.hexdigest(payload), args.orders, args.runs)
    slow = _per_call(
        lambda _i: hmac.new(key, payload, hashlib.sha256).hexdigest(), args.orders, args.runs
    )
    print(f"{'HMAC, 330 B':<14}{330:>7}{fast:>10.0f}ns{slow:>10.0f}ns{slow / fast:>7.1f}x")
    empty = _per_call(lambda _i: None, args.orders, args.runs)
    print(f"{'(empty loop)':<14}{'':>7}{empty:>10.0f}ns")
    print(
        f"check: compiled and Python requests byte-identical for {args.orders:,} orders per "
        "venue\nsubmit: LiveGateway.submit over the WebSocket path (checks, tracking, render, "
        "answer deadline) into a socket that drops the bytes: no system call, which costs "
        "5-13 us more on this machine's loopback (python -m bench engine, gateways)\n"
        f"flushed: the median of {args.cold} single submits, each after a 64 MiB read that "
        "flushes the caches; +warm: with LiveGateway.warm of the same instrument and side "
        "between the flush and the submit (the engine's warm-up, at its best)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
