"""Local exchange simulator on 127.0.0.1: Binance (spot, USDⓈ-M), OKX v5, Bybit v5,
Coinbase Advanced Trade and Kraken WebSocket v2 books.

Product code: tests use it to exercise the feed clients against real sockets, and the daemon's
demo runs on it. Each simulated venue is one aiohttp server serving its WebSocket streams and
its REST snapshot, moving TRUE order books (exact decimal text, never float) with a seeded
stochastic model around a fair price shared between venues, and injecting faults on demand.

Driving it::

    from arbengine.venues.sim import BinanceSim, OkxSim, FairMarket, Fault

    fair = FairMarket(seed=7)  # share it: both venues then quote the same BTC-USDT price
    async with BinanceSim(["BTCUSDT"], seed=1, fair=fair) as binance, \\
               OkxSim(["BTC-USDT"], seed=2, fair=fair) as okx:
        binance.ws_url                  # "ws://127.0.0.1:<port>"  (stream base)
        binance.stream_url("btcusdt@depth@100ms")             # raw stream
        binance.stream_url("btcusdt@depth@100ms", combined=True)  # /stream?streams=...
        binance.rest_url                # "http://127.0.0.1:<port>"; GET /api/v3/depth
        okx.ws_url                      # "ws://127.0.0.1:<port>/ws/v5/public"
        okx.true_book("BTC-USDT")       # BookSnapshot: bids/asks text, best_bid, update_id
        okx.dislocate(50, 2.0)          # OKX 50 bps above fair for 2 s
        binance.faults.inject(Fault.DROP)                        # drop the next message
        binance.faults.inject(Fault.DUPLICATE, count=None, probability=0.05)
        binance.faults.inject(Fault.REST_429, seconds=1.0)       # Retry-After: 1
        binance.faults.count(Fault.DROP)                         # how many fired
        binance.pause(); binance.resume(); binance.tick()        # freeze / step the books

``BinanceSim(market="usdm")`` serves USDⓈ-M futures (``/fapi/v1/depth``, ``pu``, ``T``).
``interval_s`` is the 100 ms cadence; tests shrink it to get more book changes per second
(the shared fair price still steps every 100 ms of real time, ``FairMarket(step_ns=...)``).
``ModelConfig(random_dislocation_prob=...)`` adds occasional random dislocations (demo).
``replay={"BTCUSDT": batches}`` drives a symbol from recorded ``(side, price, size)`` batches.
``python -m arbengine.venues.sim`` runs both venues for a demo.

Order entry: every venue also serves its order API (``binance_orders``, ``okx_orders``,
``bybit_orders``, ``kraken_orders``, ``coinbase_orders``: the venue's paths and WS order
APIs, verifying keys, signatures, timestamps and recvWindow as the venue does and answering
with its reply shapes and codes) on ``sim.exchange`` (``exchange.SimExchange``: accounts
and a matching engine against the venue's true book)::

    account = binance.exchange.add_account("key", "secret", balances={"USDT": "1000"})
    binance.faults.inject(Fault.ORDER_TIMEOUT)   # executed, reply lost
    binance.exchange.skew_ms = 5_000             # the venue's clock 5 s ahead

Modules: ``model`` (books, fair price, replay), ``faults`` (fault kinds and the injector),
``binance``, ``okx``, ``bybit``, ``coinbase``, ``kraken`` (the servers), ``*_orders`` (their
order APIs), ``exchange`` (accounts and matching), ``_server`` (what the servers share).
"""

from arbengine.venues.sim.binance import BinanceSim
from arbengine.venues.sim.bybit import BYBIT_INSTRUMENTS, BybitSim
from arbengine.venues.sim.coinbase import COINBASE_INSTRUMENTS, CoinbaseSim
from arbengine.venues.sim.faults import Fault, FaultEvent, FaultInjector, FaultRule
from arbengine.venues.sim.kraken import KRAKEN_INSTRUMENTS, KrakenSim
from arbengine.venues.sim.model import (
    BINANCE_SPOT,
    BINANCE_USDM,
    OKX_INSTRUMENTS,
    BookModel,
    BookSnapshot,
    Changes,
    DecimalText,
    FairMarket,
    FairPrice,
    ModelConfig,
    ReplaySource,
    SimInstrument,
    TrueBook,
)
from arbengine.venues.sim.okx import OkxSim, okx_checksum

__all__ = [
    "BINANCE_SPOT",
    "BINANCE_USDM",
    "BYBIT_INSTRUMENTS",
    "COINBASE_INSTRUMENTS",
    "KRAKEN_INSTRUMENTS",
    "OKX_INSTRUMENTS",
    "BinanceSim",
    "BookModel",
    "BookSnapshot",
    "BybitSim",
    "Changes",
    "CoinbaseSim",
    "DecimalText",
    "FairMarket",
    "FairPrice",
    "Fault",
    "FaultEvent",
    "FaultInjector",
    "FaultRule",
    "KrakenSim",
    "ModelConfig",
    "OkxSim",
    "ReplaySource",
    "SimInstrument",
    "TrueBook",
    "okx_checksum",
]
