"""The config's schema: one frozen dataclass per YAML section, one field per key.

The YAML key is the field name. Each field's ``knob`` holds what the generic reader
(``config_parse``) checks beyond the type (ranges, non-empty) and whether the daemon may
apply a change to it on reload (``reload=True``: thresholds, sizes, limits, enabling and
disabling pairs). A reloadable field makes everything under it reloadable.

Value types, by annotation:

* ``Money``: exact decimal text (``"0.01"``) or a plain integer; a YAML float is refused,
  because ``0.1`` is not exact. Prices, sizes, balances, limits, fees and edges in bps.
* ``Num``: a number that is not money (seconds, milliseconds, probabilities): an integer,
  a YAML float or numeric text, kept as its exact Decimal.
* ``int``, ``bool``, ``str``, a ``StrEnum`` (its values), ``X | None``, ``dict[str, X]``,
  ``tuple[X, ...]`` (a YAML list), ``tuple[X, Y]`` (a list of two), another section, and a
  ``CredentialRef`` (``{env: NAME}`` or ``{credential: NAME}``).
"""

# ruff: noqa: RUF009
# (every field's default is a ``knob(...)`` call: it returns a dataclasses.field carrying
# the field's checks, which is what RUF009 can't tell from a shared mutable default.)
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, NewType

from arbengine.config_yaml import nearest_line
from arbengine.execution import LegPolicy
from arbengine.orders import TimeInForce

__all__ = [
    "Config",
    "ControlSpec",
    "CredentialRef",
    "Credentials",
    "Endpoints",
    "EngineSpec",
    "InstrumentSpec",
    "JournalSpec",
    "Kill",
    "KillSpec",
    "Knob",
    "Leftovers",
    "MetricsSpec",
    "Mode",
    "Money",
    "Num",
    "PairSpec",
    "PaperSpec",
    "RateLimitSpec",
    "ReconcileSpec",
    "RiskSpec",
    "SimulatorSpec",
    "StatusSpec",
    "VenueKind",
    "VenueLimitsSpec",
    "VenueSpec",
    "knob",
]

Money = NewType("Money", Decimal)
Num = NewType("Num", Decimal)


class VenueKind(StrEnum):
    BINANCE = "binance"  # spot
    BINANCE_USDM = "binance_usdm"  # USDⓈ-M futures
    OKX = "okx"
    BYBIT = "bybit"  # spot
    KRAKEN = "kraken"
    COINBASE = "coinbase"


class Mode(StrEnum):
    PAPER = "paper"  # orders filled against the venue's live book by the paper gateway
    LIVE = "live"  # real orders with the venue's keys


class Leftovers(StrEnum):
    """What startup does with a live venue's open orders left by a previous run."""

    CANCEL = "cancel"
    ADOPT = "adopt"  # left resting; their balance stays locked, and drift counts it


class Kill(StrEnum):
    """Kill-switch levels a limit trips (``risk.KillLevel`` above NONE)."""

    HALT_NEW = "halt_new"
    REDUCE_ONLY = "reduce_only"
    FLATTEN = "flatten"


@dataclass(frozen=True, slots=True)
class Knob:
    reload: bool = False
    ge: Decimal | None = None
    gt: Decimal | None = None
    le: Decimal | None = None
    lt: Decimal | None = None
    nonempty: bool = False
    doc: str = ""


def knob(
    default: Any = MISSING,
    *,
    factory: Any = MISSING,
    reload: bool = False,
    ge: int | str | None = None,
    gt: int | str | None = None,
    le: int | str | None = None,
    lt: int | str | None = None,
    nonempty: bool = False,
    doc: str = "",
) -> Any:
    """A field with its checks. No default and no factory: the key is required."""

    def dec(v: int | str | None) -> Decimal | None:
        return None if v is None else Decimal(v)

    meta = {"knob": Knob(reload, dec(ge), dec(gt), dec(le), dec(lt), nonempty, doc)}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def knob_of(f: Any) -> Knob:
    k = f.metadata.get("knob")
    return k if isinstance(k, Knob) else Knob()


_M = Money
_N = Num


@dataclass(frozen=True, slots=True)
class CredentialRef:
    """Where a secret is, never the secret: an environment variable or a systemd
    credential (``$CREDENTIALS_DIRECTORY/<name>``, from LoadCredential=)."""

    source: str  # "env" | "credential"
    name: str

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    api_key: CredentialRef | None = knob(None)
    api_secret: CredentialRef | None = knob(None)
    passphrase: CredentialRef | None = knob(None, doc="OKX only")


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoints:
    ws: str | None = knob(None, doc="WebSocket base URL; default: the venue's public one")
    rest: str | None = knob(None, doc="REST base URL; default: the venue's public one")
    ws_orders: str | None = knob(
        None, doc="WebSocket order entry URL (mode live); default: the gateway's own"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentSpec:
    base: str = knob()
    quote: str = knob()
    tick: Money = knob(gt=0)
    lot: Money = knob(gt=0)
    min_size: Money = knob(_M(Decimal(0)))
    min_notional: Money = knob(_M(Decimal(0)))
    size_step: Money | None = knob(None, gt=0)
    multiplier: Money = knob(_M(Decimal(1)), gt=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperSpec:
    latency_ms: Num = knob(_N(Decimal(0)), ge=0)
    reject_prob: Num = knob(_N(Decimal(0)), ge=0, le=1)
    timeout_prob: Num = knob(_N(Decimal(0)), ge=0, le=1)
    late_fill_ms: Num | None = knob(None, ge=0)
    seed: int = knob(0)
    balances: dict[str, Money] = knob(factory=dict, doc="starting balance per asset")


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitSpec:
    """One order-rate bucket, in one of three forms: ``orders`` per ``seconds`` (a venue's
    "N per T" window), ``burst``/``refill``/``seconds`` (a raw token bucket), or
    ``threshold``/``decay_per_s`` (a decaying counter, Kraken)."""

    orders: int | None = knob(None, ge=2)
    seconds: Num | None = knob(None, gt=0)
    burst: int | None = knob(None, ge=1)
    refill: int | None = knob(None, ge=1)
    threshold: int | None = knob(None, ge=1)
    decay_per_s: Money | None = knob(None, gt=0)
    per_instrument: bool = knob(False)


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueLimitsSpec:
    max_book_age_ms: Num = knob(_N(Decimal(2000)), gt=0)
    max_open_orders: int = knob(10, ge=1)
    priority_share: Money = knob(_M(Decimal("0.2")), ge=0, lt=1)
    breaker_failures: int = knob(3, ge=1)
    breaker_cooldown_s: Num = knob(_N(Decimal(30)), gt=0)
    health_window_s: Num = knob(_N(Decimal(60)), gt=0)
    max_rejects: int = knob(5, ge=0)
    max_timeouts: int = knob(3, ge=0)
    max_resyncs: int = knob(5, ge=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueSpec:
    kind: VenueKind = knob()
    mode: Mode = knob(Mode.PAPER)
    fee_bps: Money = knob(doc="taker fee, bps of notional")
    endpoints: Endpoints = knob(factory=Endpoints)
    credentials: Credentials = knob(factory=Credentials)
    instruments: dict[str, InstrumentSpec] = knob(nonempty=True)
    paper: PaperSpec = knob(factory=PaperSpec)
    limits: VenueLimitsSpec = knob(factory=VenueLimitsSpec, reload=True)
    rate_limits: tuple[RateLimitSpec, ...] | None = knob(None, reload=True, nonempty=True)
    # Live order entry (mode live only): the signed requests' receive window, how long an
    # order request may go unanswered before its outcome is unknown, and whether to enter
    # orders over the venue's WebSocket where the gateway offers it (REST otherwise).
    recv_window_ms: int = knob(5000, ge=1, le=60000)
    order_timeout_ms: int = knob(2000, ge=1)
    order_ws: bool = knob(True)


@dataclass(frozen=True, slots=True, kw_only=True)
class PairSpec:
    id: str = knob()
    a: str = knob(doc='"venue:symbol"')
    b: str = knob(doc='"venue:symbol"')
    conversion: str | None = knob(None, doc='"venue:symbol" of a book converting the quotes')
    enabled: bool = knob(True, reload=True)
    min_edge_bps: Money = knob(reload=True)
    max_edge_bps: Money = knob(reload=True)
    min_size: Money = knob(_M(Decimal(0)), reload=True)
    max_size: Money = knob(reload=True, gt=0)
    min_notional: Money = knob(_M(Decimal(0)), reload=True)
    max_notional: Money = knob(reload=True, gt=0)
    fee_a_bps: Money | None = knob(None, reload=True)
    fee_b_bps: Money | None = knob(None, reload=True)
    tif: TimeInForce = knob(TimeInForce.IOC, reload=True)
    leg_policy: LegPolicy = knob(LegPolicy.UNWIND, reload=True)
    max_slippage_bps: Money = knob(_M(Decimal(20)), reload=True)
    leg_deadline_s: Num = knob(_N(Decimal(2)), reload=True, gt=0)
    order_timeout_s: Num = knob(_N(Decimal(1)), reload=True, gt=0)
    query_interval_s: Num = knob(_N(Decimal("0.25")), reload=True, gt=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class KillSpec:
    daily_loss: Kill = knob(Kill.HALT_NEW)
    drawdown: Kill = knob(Kill.HALT_NEW)
    exposure: Kill = knob(Kill.REDUCE_ONLY)


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSpec:
    reference: str = knob("USDT", doc="currency of PnL, loss and drawdown")
    max_inventory: dict[str, Money] = knob(reload=True)
    max_net_exposure: dict[str, Money] = knob(reload=True)
    max_daily_loss: Money = knob(reload=True)
    max_drawdown: Money = knob(reload=True)
    max_open_orders_total: int = knob(20, reload=True, ge=2)
    max_data_age_ms: Num = knob(_N(Decimal(100)), reload=True, gt=0)
    kill: KillSpec = knob(factory=KillSpec, reload=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSpec:
    budget_ms: Num = knob(_N(Decimal(100)), reload=True, gt=0)
    risk_refresh_s: Num = knob(_N(Decimal(1)), reload=True, gt=0)
    # Startup waits this long for every enabled pair's books to be LIVE, then gives up.
    live_timeout_s: Num = knob(_N(Decimal(60)), gt=0)
    # On SIGTERM, in-flight legs get this long to settle: well under the unit's 30 s
    # TimeoutStopSec, which must also cover closing the journal.
    drain_s: Num = knob(_N(Decimal(10)), reload=True, gt=0, le=25)
    busy_poll: bool = knob(False, doc="keep the event loop from sleeping (a core at 100%)")
    # The order path run dry (rendered, never sent) every this many book updates, so an
    # arb finds it in the caches: 0 turns it off. The default is engine.WARM_EVERY.
    warm_every: int = knob(8, reload=True, ge=0, doc="book updates between order-path warm-ups")


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalSpec:
    directory: str | None = knob(None, doc="default: $STATE_DIRECTORY/journal")
    max_bytes: int = knob(64 << 20, ge=1)
    rotate_daily: bool = knob(True)
    batch_entries: int = knob(256, ge=1)
    batch_ms: Num = knob(_N(Decimal(20)), ge=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSpec:
    enabled: bool = knob(True)
    host: str = knob("127.0.0.1")
    port: int = knob(9108, ge=0, le=65535)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlSpec:
    socket: str | None = knob(None, doc="default: $RUNTIME_DIRECTORY/control.sock")


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusSpec:
    interval_s: Num = knob(_N(Decimal(1)), reload=True, gt=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorSpec:
    """Simulated venues on loopback (``venues.sim``), started in-process by the daemon:
    the demo trades on them with no keys."""

    venues: tuple[str, ...] = knob(nonempty=True)
    seed: int = knob(1)
    interval_ms: Num = knob(_N(Decimal(100)), gt=0)
    fair_step_ms: Num = knob(_N(Decimal(100)), gt=0)
    vol_ppm: int = knob(40, ge=0)
    dislocation_prob: Num = knob(_N(Decimal(0)), ge=0, le=1)
    dislocation_bps: tuple[int, int] = knob((10, 40), ge=0)
    dislocation_s: tuple[Num, Num] = knob((_N(Decimal(1)), _N(Decimal(5))), gt=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileSpec:
    """The live venues' accounts against the engine's: at startup (leftover open orders,
    balances taken from the venue) and every ``interval_s`` (a drift beyond the asset's
    tolerance holds the venue until a later reconciliation agrees again)."""

    leftovers: Leftovers = knob(Leftovers.CANCEL)
    interval_s: Num = knob(_N(Decimal(30)), gt=0)
    drift_tolerance: dict[str, Money] = knob(
        factory=dict, doc="per asset; an asset not given tolerates no drift"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    venues: dict[str, VenueSpec] = knob(nonempty=True)
    pairs: tuple[PairSpec, ...] = knob(nonempty=True)
    risk: RiskSpec = knob()
    simulator: SimulatorSpec | None = knob(None)
    engine: EngineSpec = knob(factory=EngineSpec)
    journal: JournalSpec = knob(factory=JournalSpec)
    metrics: MetricsSpec = knob(factory=MetricsSpec)
    control: ControlSpec = knob(factory=ControlSpec)
    status: StatusSpec = knob(factory=StatusSpec)
    reconcile: ReconcileSpec = knob(factory=ReconcileSpec)
    # Where it came from and the line of every key path (errors after loading, reload
    # messages); not part of the config's value.
    source: str = field(default="", compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def pair(self, pair_id: str) -> PairSpec:
        for p in self.pairs:
            if p.id == pair_id:
                return p
        raise KeyError(pair_id)

    @property
    def enabled_pairs(self) -> tuple[PairSpec, ...]:
        return tuple(p for p in self.pairs if p.enabled)

    def line(self, path: str) -> int:
        """The line ``path`` was given on (or its nearest given ancestor's; 0 if none)."""
        return nearest_line(self.lines, path)
