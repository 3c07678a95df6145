"""From a loaded ``Config`` to the engine's own objects: what the daemon calls to wire up.

Each builder takes validated specs, so the constructors' checks have already passed once
(``config_check`` runs these same builders and reports their errors in config terms).
Venue names in the config are the engine's venue names: an ``Instrument``'s venue, a
``VenueLimits`` name, a gateway's key, a portfolio account.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.config_schema import (
    Config,
    InstrumentSpec,
    Kill,
    PairSpec,
    RateLimitSpec,
    SimulatorSpec,
    VenueKind,
    VenueSpec,
)
from arbengine.engine import PairConfig
from arbengine.execution import ExecutionPolicy
from arbengine.journal import Journal
from arbengine.orders import atoms
from arbengine.portfolio import Portfolio
from arbengine.risk import (
    DEFAULT_RATE_LIMITS,
    KillLevel,
    PairLimits,
    RateLimit,
    RiskLimits,
    VenueLimits,
)
from arbengine.venues import binance, bybit, coinbase, kraken, okx
from arbengine.venues.feed import VenueFeed
from arbengine.venues.paper import PaperGateway
from arbengine.venues.sim import (
    BINANCE_SPOT,
    BINANCE_USDM,
    BYBIT_INSTRUMENTS,
    COINBASE_INSTRUMENTS,
    KRAKEN_INSTRUMENTS,
    OKX_INSTRUMENTS,
    BinanceSim,
    BybitSim,
    CoinbaseSim,
    FairMarket,
    KrakenSim,
    ModelConfig,
    OkxSim,
    SimInstrument,
)
from arbengine.venues.ws import Backoff

__all__ = [
    "DEFAULT_ENDPOINTS",
    "SIM_INSTRUMENTS",
    "Sim",
    "budget_ns",
    "build_pair_config",
    "build_pair_limits",
    "endpoints",
    "execution_policy",
    "feed",
    "instrument",
    "instruments",
    "kill_level",
    "model_config",
    "open_journal",
    "pair_config",
    "pair_fees",
    "pair_limits",
    "paper_gateway",
    "portfolio",
    "rate_limits",
    "risk_limits",
    "simulators",
    "starting_balances",
    "venue_fees",
    "venue_limits",
]

_NS = Decimal(10**9)
_NS_PER_MS = Decimal(10**6)
# Venue kinds whose instruments are futures in one-way position mode.
_DERIVATIVES = frozenset({VenueKind.BINANCE_USDM})

# The venues' public market-data endpoints (ws, rest), as the feed modules use them.
DEFAULT_ENDPOINTS: Mapping[VenueKind, tuple[str, str]] = {
    VenueKind.BINANCE: (binance.SPOT.ws_base, binance.SPOT.rest_base),
    VenueKind.BINANCE_USDM: (binance.USDM.ws_base, binance.USDM.rest_base),
    VenueKind.OKX: (okx.PUBLIC_WS, "https://www.okx.com"),
    VenueKind.BYBIT: (bybit.PUBLIC_WS.format(category="spot"), "https://api.bybit.com"),
    VenueKind.KRAKEN: (kraken.PUBLIC_WS, "https://api.kraken.com"),
    VenueKind.COINBASE: (coinbase.PUBLIC_WS, "https://api.coinbase.com"),
}

# What each simulated venue kind can serve (symbol -> grids), from ``venues.sim``.
SIM_INSTRUMENTS: Mapping[VenueKind, Mapping[str, SimInstrument]] = {
    VenueKind.BINANCE: BINANCE_SPOT,
    VenueKind.BINANCE_USDM: BINANCE_USDM,
    VenueKind.OKX: OKX_INSTRUMENTS,
    VenueKind.BYBIT: BYBIT_INSTRUMENTS["spot"],
    VenueKind.KRAKEN: KRAKEN_INSTRUMENTS,
    VenueKind.COINBASE: COINBASE_INSTRUMENTS,
}

Sim = BinanceSim | OkxSim | BybitSim | KrakenSim | CoinbaseSim


def text(value: Decimal) -> str:
    """Decimal as plain text ("0.00000001", never "1E-8"), as Instrument and the limits
    take it."""
    return format(value, "f")


def ns(seconds: Decimal) -> int:
    """Exact seconds -> int ns (rounded to the ns; configs give ms at the finest)."""
    return int((seconds * _NS).to_integral_value())


def ms_ns(millis: Decimal) -> int:
    return int((millis * _NS_PER_MS).to_integral_value())


# --- instruments ---------------------------------------------------------------------------


def instrument(
    venue: str, symbol: str, spec: InstrumentSpec, kind: VenueKind | None = None
) -> Instrument:
    return Instrument(
        venue,
        symbol,
        spec.base,
        spec.quote,
        text(spec.tick),
        text(spec.lot),
        multiplier=text(spec.multiplier),
        min_size=text(spec.min_size),
        min_notional=text(spec.min_notional),
        size_step=None if spec.size_step is None else text(spec.size_step),
        derivative=kind in _DERIVATIVES,
    )


def instruments(config: Config) -> dict[str, Instrument]:
    """Every configured instrument by ``"venue:symbol"`` (what pairs refer to)."""
    return {
        f"{name}:{symbol}": instrument(name, symbol, spec, venue.kind)
        for name, venue in config.venues.items()
        for symbol, spec in venue.instruments.items()
    }


# --- risk ----------------------------------------------------------------------------------


def rate_limits(kind: VenueKind, specs: tuple[RateLimitSpec, ...] | None) -> tuple[RateLimit, ...]:
    """The venue's order buckets: as configured, else the kind's documented defaults
    (ValueError when there are none: Binance USDⓈ-M)."""
    if specs is None:
        if kind.value not in DEFAULT_RATE_LIMITS:
            raise ValueError(f"no documented default for {kind.value}; give rate_limits")
        return tuple(DEFAULT_RATE_LIMITS[kind.value])
    return tuple(rate_limit(s) for s in specs)


def rate_limit(spec: RateLimitSpec) -> RateLimit:
    """One bucket from whichever of its three forms is given (ValueError: none or mixed)."""
    given = {
        name
        for name in ("orders", "seconds", "burst", "refill", "threshold", "decay_per_s")
        if getattr(spec, name) is not None
    }
    each = spec.per_instrument
    if given == {"orders", "seconds"}:
        assert spec.orders is not None and spec.seconds is not None
        return RateLimit.window(spec.orders, spec.seconds, per_instrument=each)
    if given == {"burst", "refill", "seconds"}:
        assert spec.burst is not None and spec.refill is not None and spec.seconds is not None
        return RateLimit(spec.burst, spec.refill, spec.seconds, each)
    if given == {"threshold", "decay_per_s"}:
        assert spec.threshold is not None and spec.decay_per_s is not None
        return RateLimit.counter(spec.threshold, spec.decay_per_s, per_instrument=each)
    raise ValueError(
        "give orders + seconds (a window), burst + refill + seconds (a bucket), or "
        "threshold + decay_per_s (a decaying counter)"
    )


def venue_limits(name: str, venue: VenueSpec) -> VenueLimits:
    lim = venue.limits
    return VenueLimits(
        name,
        max_book_age_ns=ms_ns(lim.max_book_age_ms),
        max_open_orders=lim.max_open_orders,
        rate_limits=rate_limits(venue.kind, venue.rate_limits),
        priority_share=lim.priority_share,
        breaker_failures=lim.breaker_failures,
        breaker_cooldown_ns=ns(lim.breaker_cooldown_s),
        health_window_ns=ns(lim.health_window_s),
        max_rejects=lim.max_rejects,
        max_timeouts=lim.max_timeouts,
        max_resyncs=lim.max_resyncs,
    )


def pair_fees(pair: PairSpec, venues: Mapping[str, VenueSpec]) -> tuple[Decimal, Decimal]:
    """The pair's fee per leg in bps: its override, else the leg's venue taker fee."""
    va, vb = pair.a.partition(":")[0], pair.b.partition(":")[0]
    return (
        pair.fee_a_bps if pair.fee_a_bps is not None else venues[va].fee_bps,
        pair.fee_b_bps if pair.fee_b_bps is not None else venues[vb].fee_bps,
    )


def pair_limits(pair: PairSpec, config: Config, insts: Mapping[str, Instrument]) -> PairLimits:
    return build_pair_limits(pair, pair_fees(pair, config.venues), insts)


def build_pair_limits(
    pair: PairSpec, fees: tuple[Decimal, Decimal], insts: Mapping[str, Instrument]
) -> PairLimits:
    return PairLimits(
        pair.id,
        insts[pair.a],
        insts[pair.b],
        min_edge_bps=pair.min_edge_bps,
        max_edge_bps=pair.max_edge_bps,
        max_base=pair.max_size,
        max_notional=pair.max_notional,
        min_base=pair.min_size,
        min_notional=pair.min_notional,
        fee_a_bps=fees[0],
        fee_b_bps=fees[1],
    )


_KILL = {
    Kill.HALT_NEW: KillLevel.HALT_NEW,
    Kill.REDUCE_ONLY: KillLevel.REDUCE_ONLY,
    Kill.FLATTEN: KillLevel.FLATTEN,
}


def kill_level(kill: Kill) -> KillLevel:
    return _KILL[kill]


def risk_limits(config: Config, insts: Mapping[str, Instrument] | None = None) -> RiskLimits:
    """Every limit the gates enforce; all pairs are in it, enabled or not (the engine only
    runs the enabled ones, and a reload may enable one)."""
    insts = instruments(config) if insts is None else insts
    risk = config.risk
    return RiskLimits(
        venues=tuple(venue_limits(name, v) for name, v in config.venues.items()),
        pairs=tuple(pair_limits(p, config, insts) for p in config.pairs),
        max_inventory=dict(risk.max_inventory),
        max_net_exposure=dict(risk.max_net_exposure),
        max_daily_loss=risk.max_daily_loss,
        max_drawdown=risk.max_drawdown,
        max_open_orders_total=risk.max_open_orders_total,
        max_data_age_ns=ms_ns(risk.max_data_age_ms),
        daily_loss_kill=kill_level(risk.kill.daily_loss),
        drawdown_kill=kill_level(risk.kill.drawdown),
        exposure_kill=kill_level(risk.kill.exposure),
    )


# --- engine and execution ------------------------------------------------------------------


def execution_policy(pair: PairSpec) -> ExecutionPolicy:
    return ExecutionPolicy(
        tif=pair.tif,
        leg_policy=pair.leg_policy,
        max_slippage_bps=pair.max_slippage_bps,
        leg_deadline_s=float(pair.leg_deadline_s),
        order_timeout_s=float(pair.order_timeout_s),
        query_interval_s=float(pair.query_interval_s),
    )


def pair_config(pair: PairSpec, config: Config, insts: Mapping[str, Instrument]) -> PairConfig:
    return build_pair_config(pair, pair_fees(pair, config.venues), insts)


def build_pair_config(
    pair: PairSpec, fees: tuple[Decimal, Decimal], insts: Mapping[str, Instrument]
) -> PairConfig:
    return PairConfig(
        pair.id,
        insts[pair.a],
        insts[pair.b],
        fees[0],
        fees[1],
        pair.min_edge_bps,
        max_size=text(pair.max_size),
        policy=execution_policy(pair),
        conversion=None if pair.conversion is None else insts[pair.conversion],
    )


def budget_ns(config: Config) -> int:
    return ms_ns(config.engine.budget_ms)


def venue_fees(config: Config) -> dict[str, Decimal]:
    """Each venue's taker fee in bps (the executor's reservations and hedges)."""
    return {name: v.fee_bps for name, v in config.venues.items()}


# --- portfolio, paper venues, journal ------------------------------------------------------


def starting_balances(config: Config) -> dict[tuple[str, str], int]:
    """Atoms per (venue, asset) the paper venues start with."""
    return {
        (name, asset): atoms(amount)
        for name, v in config.venues.items()
        for asset, amount in v.paper.balances.items()
    }


def portfolio(config: Config) -> Portfolio:
    """A fresh portfolio at the starting balances (a restart recovers it from the journal
    instead)."""
    return Portfolio(starting_balances(config), reference=config.risk.reference)


def paper_gateway(
    config: Config, venue: str, books: Callable[[str], Book | None], pf: Portfolio
) -> PaperGateway:
    """The paper order entry of ``venue``; ``books(symbol)`` is its LIVE book or None."""
    v = config.venues[venue]
    paper = v.paper
    return PaperGateway(
        venue,
        books,
        pf,
        fee_bps=v.fee_bps,
        latency_s=float(paper.latency_ms / 1000),
        reject_prob=float(paper.reject_prob),
        timeout_prob=float(paper.timeout_prob),
        late_fill_s=None if paper.late_fill_ms is None else float(paper.late_fill_ms / 1000),
        seed=paper.seed,
    )


def journal_options(config: Config) -> dict[str, Any]:
    j = config.journal
    return {
        "max_bytes": j.max_bytes,
        "rotate_daily": j.rotate_daily,
        "batch_entries": j.batch_entries,
        "batch_ms": float(j.batch_ms),
    }


def open_journal(config: Config) -> Journal:
    """The journal in ``journal.directory`` (always set after loading)."""
    assert config.journal.directory is not None
    return Journal(config.journal.directory, **journal_options(config))


# --- market data: simulators, endpoints, feeds ---------------------------------------------


def model_config(sim: SimulatorSpec) -> ModelConfig:
    lo_s, hi_s = sim.dislocation_s
    return ModelConfig(
        random_dislocation_prob=float(sim.dislocation_prob),
        random_dislocation_bps=sim.dislocation_bps,
        random_dislocation_s=(float(lo_s), float(hi_s)),
    )


def simulators(config: Config) -> dict[str, Sim]:
    """The simulated venues of ``simulator:``, by venue name, built but not started
    (``async with`` each), on one shared fair price, each on a free loopback port."""
    sim = config.simulator
    if sim is None:
        return {}
    fair = FairMarket(sim.seed, step_ns=ms_ns(sim.fair_step_ms), vol_ppm=sim.vol_ppm)
    model = model_config(sim)
    interval = float(sim.interval_ms / 1000)
    out: dict[str, Sim] = {}
    for i, name in enumerate(sim.venues):
        v = config.venues[name]
        symbols = list(v.instruments)
        common: dict[str, Any] = {
            "seed": sim.seed + i,
            "interval_s": interval,
            "fair": fair,
            "model": model,
        }
        kind = v.kind
        if kind is VenueKind.BINANCE:
            out[name] = BinanceSim(symbols, market="spot", **common)
        elif kind is VenueKind.BINANCE_USDM:
            out[name] = BinanceSim(symbols, market="usdm", **common)
        elif kind is VenueKind.OKX:
            out[name] = OkxSim(symbols, **common)
        elif kind is VenueKind.BYBIT:
            out[name] = BybitSim(symbols, category="spot", **common)
        elif kind is VenueKind.KRAKEN:
            out[name] = KrakenSim(symbols, **common)
        else:
            out[name] = CoinbaseSim(symbols, **common)
    return out


def endpoints(config: Config, venue: str, sims: Mapping[str, Sim] | None = None) -> tuple[str, str]:
    """(ws, rest) base URLs of ``venue``: its running simulator's, else the configured
    ones, else the kind's public defaults."""
    sim = (sims or {}).get(venue)
    if sim is not None:
        return sim.ws_url, sim.rest_url
    v = config.venues[venue]
    ws, rest = DEFAULT_ENDPOINTS[v.kind]
    return v.endpoints.ws or ws, v.endpoints.rest or rest


def feed(
    config: Config,
    venue: str,
    insts: Mapping[str, Instrument],
    *,
    sims: Mapping[str, Sim] | None = None,
    backoff: Backoff | None = None,
) -> VenueFeed:
    """The market-data feed of every configured instrument of ``venue``."""
    v = config.venues[venue]
    mine = [insts[f"{venue}:{symbol}"] for symbol in v.instruments]
    ws, rest = endpoints(config, venue, sims)
    kind = v.kind
    if kind in (VenueKind.BINANCE, VenueKind.BINANCE_USDM):
        market = binance.SPOT if kind is VenueKind.BINANCE else binance.USDM
        return binance.BinanceFeed(market, mine, ws_base=ws, rest_base=rest, backoff=backoff)
    if kind is VenueKind.OKX:
        return okx.OkxFeed(mine, ws_url=ws, backoff=backoff)
    if kind is VenueKind.BYBIT:
        return bybit.BybitFeed("spot", mine, ws_url=ws, backoff=backoff)
    if kind is VenueKind.KRAKEN:
        return kraken.KrakenFeed(mine, ws_url=ws, backoff=backoff)
    return coinbase.CoinbaseFeed(mine, ws_url=ws, backoff=backoff)
