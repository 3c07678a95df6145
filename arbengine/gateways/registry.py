"""Which live order gateway serves each venue kind, and building one from the config.

The gateway classes are named by dotted path and imported only when a live venue of that
kind is built (or checked), so a paper-only daemon never imports them, and a kind whose
module is missing from this build is a one-line error rather than an ImportError traceback.

Credentials are resolved here, at startup, from where the config points
(``config_secrets.resolve_credential``): a missing or malformed one is a ``GatewayBuildError``
naming the venue and the credential's *reference* (``env:NAME``), never its value.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterable, Mapping
from typing import Any

from arbengine._core.instrument import Instrument
from arbengine.config_build import DEFAULT_ENDPOINTS
from arbengine.config_schema import Config, CredentialRef, VenueKind
from arbengine.config_secrets import CredentialError, Secret, resolve_credential
from arbengine.gateways.base import LiveGateway, RateLimitHook, VenueCredentials

__all__ = [
    "DEFAULT_ORDER_WS",
    "GATEWAYS",
    "GatewayBuildError",
    "available",
    "build_live_gateway",
    "credentials",
    "gateway_class",
]

# kind -> "module:Class". A venue's module may be absent from a build (written separately).
GATEWAYS: dict[VenueKind, str] = {
    VenueKind.BINANCE: "arbengine.gateways.binance:BinanceGateway",
    VenueKind.BINANCE_USDM: "arbengine.gateways.binance:BinanceUsdmGateway",
    VenueKind.OKX: "arbengine.gateways.okx:OkxGateway",
    VenueKind.BYBIT: "arbengine.gateways.bybit:BybitGateway",
    VenueKind.KRAKEN: "arbengine.gateways.kraken:KrakenGateway",
    VenueKind.COINBASE: "arbengine.gateways.coinbase:CoinbaseGateway",
}

# The venues' public order-entry WebSockets, where they offer one (the REST base is the
# market-data one, config_build.DEFAULT_ENDPOINTS). Binance WebSocket API (spot:
# developers.binance.com/docs/binance-spot-api-docs/web-socket-api; USDⓈ-M:
# .../derivatives/usds-margined-futures/websocket-api-general-info), OKX private channel
# (okx.com/docs-v5/en/#overview-production-trading-services), Bybit trade
# (bybit-exchange.github.io/docs/v5/websocket/trade/guideline), Kraken v2 authenticated
# (docs.kraken.com/api/docs/websocket-v2/add_order). Coinbase Advanced Trade has none.
DEFAULT_ORDER_WS: dict[VenueKind, str] = {
    VenueKind.BINANCE: "wss://ws-api.binance.com:443/ws-api/v3",
    VenueKind.BINANCE_USDM: "wss://ws-fapi.binance.com/ws-fapi/v1",
    VenueKind.OKX: "wss://ws.okx.com:8443/ws/v5/private",
    VenueKind.BYBIT: "wss://stream.bybit.com/v5/trade",
    VenueKind.KRAKEN: "wss://ws-auth.kraken.com/v2",
}

# The keys a venue's request signing needs (what config_check requires of a live venue).
_NEEDED: Mapping[VenueKind, tuple[str, ...]] = {
    VenueKind.OKX: ("api_key", "api_secret", "passphrase"),
}
_DEFAULT_NEEDED = ("api_key", "api_secret")


class GatewayBuildError(Exception):
    """A live gateway that cannot be built: one line, never a secret."""


def _split(kind: VenueKind) -> tuple[str, str]:
    path = GATEWAYS.get(kind)
    if path is None:
        raise GatewayBuildError(f"no live order gateway for {kind}")
    module, _, cls = path.partition(":")
    return module, cls


def available(kind: VenueKind) -> bool:
    """Whether this build has ``kind``'s gateway module (found without importing it)."""
    if kind not in GATEWAYS:
        return False
    module, _ = _split(kind)
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package
        return False


def gateway_class(kind: VenueKind) -> type[LiveGateway]:
    """The gateway class of ``kind`` (GatewayBuildError, one line, if this build lacks it)."""
    module_name, cls_name = _split(kind)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GatewayBuildError(
            f"no live order gateway for {kind} in this build ({module_name}: {exc})"
        ) from None
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, LiveGateway)):
        raise GatewayBuildError(
            f"no live order gateway for {kind} in this build ({module_name} has no "
            f"LiveGateway {cls_name})"
        )
    return cls


def _secret(venue: str, key: str, ref: CredentialRef | None, environ: Mapping[str, str]) -> Secret:
    if ref is None:
        raise GatewayBuildError(f"venue {venue}: credentials.{key} is not configured")
    try:
        secret = resolve_credential(ref, environ=environ)
    except CredentialError as exc:
        raise GatewayBuildError(f"venue {venue}: credentials.{key} ({ref}): {exc}") from None
    value = secret.reveal()
    # Whitespace or control characters inside a key are a paste gone wrong (a newline in
    # an env var, a quoted value): the venue would refuse every signature, so say so now.
    # A PEM private key (Coinbase CDP) is lines by design; its own parser checks it.
    if value.startswith("-----BEGIN ") and "PRIVATE KEY-----" in value:
        return secret
    if value != value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        raise GatewayBuildError(
            f"venue {venue}: credentials.{key} ({ref}): malformed (contains whitespace or "
            "control characters)"
        )
    return secret


def credentials(config: Config, venue: str, environ: Mapping[str, str]) -> VenueCredentials:
    """``venue``'s resolved credentials (GatewayBuildError naming the reference if any is
    missing or malformed)."""
    v = config.venues[venue]
    creds = v.credentials
    needed = _NEEDED.get(v.kind, _DEFAULT_NEEDED)
    got = {key: _secret(venue, key, getattr(creds, key), environ) for key in needed}
    return VenueCredentials(got["api_key"], got["api_secret"], got.get("passphrase"))


def build_live_gateway(
    config: Config,
    venue_name: str,
    instruments: Iterable[Instrument],
    on_rate_limit: RateLimitHook | None,
    *,
    environ: Mapping[str, str] | None = None,
    rest_url: str | None = None,
) -> LiveGateway:
    """The live gateway of ``venue_name`` (not started): its class by kind, its credentials,
    its order endpoints (configured, else the gateway's defaults) and its order options."""
    env = os.environ if environ is None else environ
    v = config.venues[venue_name]
    creds = credentials(config, venue_name, env)
    cls = gateway_class(v.kind)
    mine = [i for i in instruments if i.venue == venue_name]
    rest = rest_url or v.endpoints.rest or DEFAULT_ENDPOINTS[v.kind][1]
    ws: str | None = None
    if v.order_ws:
        ws = v.endpoints.ws_orders or DEFAULT_ORDER_WS.get(v.kind)
    kwargs: dict[str, Any] = {
        "rest_url": rest,
        "ws_url": ws,
        "recv_window_ms": v.recv_window_ms,
        "timeout_s": v.order_timeout_ms / 1000,
        "on_rate_limit": on_rate_limit,
    }
    try:
        return cls(venue_name, mine, creds, **kwargs)
    except (ValueError, TypeError) as exc:
        raise GatewayBuildError(f"venue {venue_name}: {' '.join(str(exc).split())}") from None
