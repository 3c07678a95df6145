"""Run simulated Binance spot, Binance USDⓈ-M and OKX venues on one shared fair price.

``python -m arbengine.venues.sim [--seed N] [--binance-port P] [--usdm-port P] [--okx-port P]
[--dislocation-prob X] [--status-every S]`` prints each venue's URLs, then a status line
(best bid/ask per venue) every few seconds until Ctrl-C or SIGTERM. Ports default to 0 (any
free port); the host defaults to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from arbengine.venues.sim.binance import BinanceSim
from arbengine.venues.sim.model import FairMarket, ModelConfig
from arbengine.venues.sim.okx import OkxSim


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m arbengine.venues.sim", description=__doc__)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--binance-port", type=int, default=0)
    p.add_argument("--usdm-port", type=int, default=0)
    p.add_argument("--okx-port", type=int, default=0)
    p.add_argument(
        "--dislocation-prob",
        type=float,
        default=0.002,
        help="per-tick probability of a random dislocation on each venue (0 disables)",
    )
    p.add_argument("--status-every", type=float, default=5.0, help="seconds; 0 disables")
    return p


async def _main(args: argparse.Namespace) -> None:
    fair = FairMarket(args.seed)
    model = ModelConfig(random_dislocation_prob=args.dislocation_prob)
    common = {"host": args.host, "fair": fair, "model": model}
    spot = BinanceSim(["BTCUSDT", "ETHUSDT"], seed=args.seed, port=args.binance_port, **common)
    usdm = BinanceSim(
        ["BTCUSDT", "ETHUSDT"], market="usdm", seed=args.seed + 1, port=args.usdm_port, **common
    )
    okx = OkxSim(["BTC-USDT", "ETH-USDT"], seed=args.seed + 2, port=args.okx_port, **common)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with spot, usdm, okx:
        print(f"binance spot  ws {spot.ws_url}  rest {spot.rest_url}{spot.depth_path}")
        print(f"binance usdm  ws {usdm.ws_url}  rest {usdm.rest_url}{usdm.depth_path}")
        print(f"okx           ws {okx.ws_url}  rest {okx.rest_url}/api/v5/market/books")
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.status_every or None)
            if args.status_every and not stop.is_set():
                books = [
                    ("spot", spot.true_book("BTCUSDT")),
                    ("usdm", usdm.true_book("BTCUSDT")),
                    ("okx", okx.true_book("BTC-USDT")),
                ]
                print(
                    "  ".join(
                        f"{name} {b.best_bid[0] if b.best_bid else '-'}/"
                        f"{b.best_ask[0] if b.best_ask else '-'}"
                        for name, b in books
                    ),
                    flush=True,
                )


def main() -> None:
    asyncio.run(_main(_parser().parse_args()))


if __name__ == "__main__":
    main()
