"""The live venues an end-to-end test can run the daemon against: for each kind, its
simulator (on a shared fair price), the account the simulator opens, and the YAML the
daemon's config needs to reach it (endpoints, credentials by env var, the instrument).
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from arbengine.venues.sim import (
    KRAKEN_INSTRUMENTS,
    BinanceSim,
    BybitSim,
    CoinbaseSim,
    FairMarket,
    KrakenSim,
    OkxSim,
)
from arbengine.venues.sim._server import SimVenue
from tests.live_sims import Account


def _ec_pem() -> str:
    """A fresh ES256 key in PEM, as Coinbase CDP issues them (lines: the env var keeps
    them)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class LiveVenue:
    name: str  # also the config's venue name and the env var prefix
    kind: str
    symbol: str
    quote: str
    fee_bps: str  # what the simulator charges (the daemon must know it to find edges)
    instrument: str  # the instrument's YAML flow mapping
    make_sim: Callable[[FairMarket, int], SimVenue]
    account: Account
    ws_orders: Callable[[Any], str | None] = lambda sim: None
    extra: str = ""  # more of the venue's YAML (indented as its keys)

    def yaml(self, sim: Any) -> str:
        orders = self.ws_orders(sim)
        endpoints = f'ws: "{sim.ws_url}", rest: "{sim.rest_url}"'
        if orders is not None:
            endpoints += f', ws_orders: "{orders}"'
        env = self.name.upper()
        phrase = (
            f", passphrase: {{env: {env}_PHRASE}}" if self.account.passphrase is not None else ""
        )
        return f"""\
  {self.name}:
    kind: {self.kind}
    mode: live
    fee_bps: "{self.fee_bps}"
    order_timeout_ms: 800
    limits: {{breaker_failures: 10, breaker_cooldown_s: 1, max_rejects: 20, max_timeouts: 20}}
    endpoints: {{{endpoints}}}
    credentials: {{api_key: {{env: {env}_KEY}}, api_secret: {{env: {env}_SECRET}}{phrase}}}
{self.extra}    instruments:
      "{self.symbol}": {self.instrument}
"""


_USDT = {"BTC": "1", "USDT": "100000"}
_USD = {"BTC": "1", "USD": "100000"}
_MARGIN = {"USDT": "100000"}
# Every simulator follows the one "BTC-USDT" fair price, so a pair's books agree but for
# the dislocations a test injects.
_KRAKEN_BTC = dataclasses.replace(KRAKEN_INSTRUMENTS["BTC/USD"], asset="BTC-USDT")

VENUES: dict[str, LiveVenue] = {
    v.name: v
    for v in (
        LiveVenue(
            "binance",
            "binance",
            "BTCUSDT",
            "USDT",
            "10",
            '{base: BTC, quote: USDT, tick: "0.01", lot: "0.00001", min_notional: "5"}',
            lambda fair, seed: BinanceSim(
                ["BTCUSDT"], market="spot", seed=seed, interval_s=0.1, fair=fair
            ),
            Account("binance", "bnE2eKey0123456789", "BN-e2e-S3CRET", None, _USDT),
            ws_orders=lambda sim: sim.ws_api_url,
        ),
        LiveVenue(
            "binance_usdm",
            "binance_usdm",
            "BTCUSDT",
            "USDT",
            "5",
            '{base: BTC, quote: USDT, tick: "0.1", lot: "0.001", min_size: "0.001",'
            ' min_notional: "100"}',
            lambda fair, seed: BinanceSim(
                ["BTCUSDT"], market="usdm", seed=seed, interval_s=0.1, fair=fair
            ),
            # A futures account starts flat, with margin only.
            Account("binance_usdm", "bnUsdmE2eKey01234567", "BNF-e2e-S3CRET", None, _MARGIN),
            ws_orders=lambda sim: sim.ws_api_url,
            # No documented default (an account's own limits): the published ORDERS ones.
            extra="    rate_limits: [{orders: 300, seconds: 10}, {orders: 1200, seconds: 60}]\n",
        ),
        LiveVenue(
            "okx",
            "okx",
            "BTC-USDT",
            "USDT",
            "10",
            '{base: BTC, quote: USDT, tick: "0.1", lot: "0.00000001", min_size: "0.00001"}',
            lambda fair, seed: OkxSim(["BTC-USDT"], seed=seed, interval_s=0.1, fair=fair),
            Account("okx", "okx-e2e-key", "OKX-e2e-S3CRET", "okx-phrase", _USDT),
            ws_orders=lambda sim: sim.private_ws_url,
        ),
        LiveVenue(
            "bybit",
            "bybit",
            "BTCUSDT",
            "USDT",
            "10",
            '{base: BTC, quote: USDT, tick: "0.01", lot: "0.000001", min_notional: "5"}',
            lambda fair, seed: BybitSim(
                ["BTCUSDT"], category="spot", seed=seed, interval_s=0.1, fair=fair
            ),
            Account("bybit", "bybit-e2e-key", "BYBIT-e2e-S3CRET", None, _USDT),
            ws_orders=lambda sim: sim.trade_ws_url,
        ),
        LiveVenue(
            "kraken",
            "kraken",
            "BTC/USD",
            "USD",
            "40",
            '{base: BTC, quote: USD, tick: "0.1", lot: "0.00000001", min_size: "0.00005",'
            ' min_notional: "0.5"}',
            lambda fair, seed: KrakenSim([_KRAKEN_BTC], seed=seed, interval_s=0.1, fair=fair),
            Account(
                "kraken", "kraken-e2e-key", base64.b64encode(bytes(range(64))).decode(), None, _USD
            ),
            ws_orders=lambda sim: sim.ws_auth_url,
        ),
        LiveVenue(
            "coinbase",
            "coinbase",
            "BTC-USD",
            "USD",
            "120",
            '{base: BTC, quote: USD, tick: "0.01", lot: "0.00000001", min_notional: "1"}',
            lambda fair, seed: CoinbaseSim(
                ["BTC-USD"], seed=seed, interval_s=0.1, fair=fair, idle_close_s=None
            ),
            Account("coinbase", "organizations/e2e/apiKeys/e2e-key", _ec_pem(), None, _USD),
        ),
    )
}
