"""Rules across keys: what each section's types can't say on their own.

Each rule runs on whatever parsed (a venue that failed to parse still exists by name, so a
pair naming it is not also reported as naming an unknown venue). The engine's constructors
(``Instrument``, ``RateLimit``, ``VenueLimits``, ``PairLimits``, ``PairConfig``,
``ExecutionPolicy``, ``RiskLimits``, ``ModelConfig``) run here through the same builders the
daemon uses, so whatever they refuse is reported too, at the key it came from.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from arbengine._core.instrument import Instrument
from arbengine.config_build import (
    SIM_INSTRUMENTS,
    build_pair_config,
    build_pair_limits,
    execution_policy,
    instrument,
    model_config,
    pair_fees,
    rate_limit,
    rate_limits,
    risk_limits,
    text,
    venue_limits,
)
from arbengine.config_parse import INVALID, suggest
from arbengine.config_schema import (
    Config,
    ControlSpec,
    Endpoints,
    InstrumentSpec,
    JournalSpec,
    MetricsSpec,
    Mode,
    PairSpec,
    RiskSpec,
    SimulatorSpec,
    VenueKind,
    VenueSpec,
)
from arbengine.config_yaml import Problems, nearest_line
from arbengine.gateways import registry
from arbengine.orders import TimeInForce

__all__ = ["check"]

T = TypeVar("T")

_PAIR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
_SUN_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the terminating NUL
# Constructor messages start "Owner(name).field: " or "Owner.field: "; the field is ours.
_OWNER = re.compile(r"^[A-Za-z]+(\([^)]*\))?\.(\w+)(\[[^\]]*\])?: ")
_FIELDS = {
    "max_base": "max_size",
    "min_base": "min_size",
    "max_data_age_ns": "max_data_age_ms",
    "max_book_age_ns": "max_book_age_ms",
}


class _Ctx:
    def __init__(self, problems: Problems, lines: Mapping[str, int]) -> None:
        self.problems = problems
        self.lines = lines

    def line(self, path: str) -> int:
        return nearest_line(self.lines, path)

    def add(self, path: str, message: str, at: str | None = None) -> None:
        """A problem with ``path``, on the line of ``at`` (default: ``path`` itself)."""
        self.problems.add(self.line(at if at is not None else path), path, message)

    def attempt(self, path: str, build: Callable[[], T]) -> T | None:
        """``build()``, or report what it raised as a problem of ``path`` (None). A
        constructor's "Owner(name).field: message" becomes ``path.field: message``."""
        try:
            return build()
        except (ValueError, TypeError) as exc:
            message = str(exc)
            m = _OWNER.match(message)
            at = path
            if m:
                field = _FIELDS.get(m.group(2), m.group(2))
                at, message = f"{path}.{field}", message[m.end() :]
            self.add(at, message, at=at if at in self.lines else path)
            return None


def check(parts: dict[str, Any], problems: Problems, lines: Mapping[str, int]) -> None:
    """Every cross-key rule over the parsed sections (INVALID parts are skipped)."""
    ctx = _Ctx(problems, lines)
    got = parts.get("venues", INVALID)
    venues: dict[str, Any] = got if isinstance(got, dict) else {}
    insts = _venues(ctx, venues)
    pairs = parts.get("pairs", INVALID)
    pairs_ok = pairs is not INVALID
    if pairs_ok:
        _pairs(ctx, pairs, venues, insts)
    risk = parts.get("risk", INVALID)
    if risk is not INVALID and pairs_ok:
        _risk(ctx, risk, pairs, venues, insts)
    sim = parts.get("simulator")
    if isinstance(sim, SimulatorSpec):
        _simulator(ctx, sim, venues)
    if isinstance(parts.get("metrics"), MetricsSpec):
        _metrics(ctx, parts["metrics"])
    if isinstance(parts.get("control"), ControlSpec):
        _control(ctx, parts["control"])
    if isinstance(parts.get("journal"), JournalSpec):
        _journal(ctx, parts["journal"])
    if not problems and all(isinstance(parts.get(k), _TYPES[k]) for k in _TYPES):
        # Everything parsed and every rule passed: the whole set of limits must build too.
        config = Config(**parts)
        built = {k: v for k, v in insts.items() if v is not None}
        ctx.attempt("risk", partial(risk_limits, config, built))


_TYPES: dict[str, type] = {"risk": RiskSpec, "venues": dict, "pairs": tuple}


# --- venues -----------------------------------------------------------------------------------


def _venues(ctx: _Ctx, venues: dict[str, Any]) -> dict[str, Instrument | None]:
    """Build every instrument; None for one that is missing or invalid but named."""
    insts: dict[str, Instrument | None] = {}
    for name, v in venues.items():
        path = f"venues.{name}"
        if v is INVALID:
            continue
        assert isinstance(v, VenueSpec)
        for symbol, ispec in v.instruments.items():
            key = f"{name}:{symbol}"
            ipath = f"{path}.instruments.{symbol}"
            if not isinstance(ispec, InstrumentSpec):  # INVALID: reported already
                insts[key] = None
                continue
            if ispec.base == ispec.quote:
                ctx.add(f"{ipath}.quote", f"base and quote are both {ispec.base}")
            if _off_grid(ctx, ipath, ispec):
                insts[key] = None
                continue
            insts[key] = ctx.attempt(ipath, partial(instrument, name, symbol, ispec, v.kind))
        _endpoints(ctx, path, v.endpoints)
        _credentials(ctx, path, name, v)
        p = v.paper
        if p.reject_prob + p.timeout_prob > 1:
            ctx.add(f"{path}.paper.timeout_prob", "reject_prob + timeout_prob must be <= 1")
        before = len(ctx.problems)
        if v.rate_limits is None:
            ctx.attempt(f"{path}.rate_limits", partial(rate_limits, v.kind, None))
        else:
            for i, spec in enumerate(v.rate_limits):
                ctx.attempt(f"{path}.rate_limits[{i}]", partial(rate_limit, spec))
        if len(ctx.problems) == before:  # the limits take the buckets
            ctx.attempt(f"{path}.limits", partial(venue_limits, name, v))
    for name, v in venues.items():
        if v is INVALID:  # its instruments are unknown: any name under it may exist
            insts[f"{name}:*"] = None
    return insts


def _off_grid(ctx: _Ctx, path: str, spec: InstrumentSpec) -> bool:
    """Sizes must sit on the size grid (``Instrument`` says so too, without the key)."""
    step = spec.size_step or spec.lot
    off = False
    for key in ("lot", "min_size"):
        amount = getattr(spec, key)
        if step and amount % step:
            ctx.add(
                f"{path}.{key}",
                f"{text(amount)} is not a whole number of size steps ({text(step)})",
            )
            off = True
    return off


def _endpoints(ctx: _Ctx, path: str, ep: Endpoints) -> None:
    for key, schemes in (
        ("ws", ("ws", "wss")),
        ("rest", ("http", "https")),
        ("ws_orders", ("ws", "wss")),
    ):
        url = getattr(ep, key)
        if url is None:
            continue
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname:
            ctx.add(
                f"{path}.endpoints.{key}",
                f"{url!r} is not a {' or '.join(s + '://' for s in schemes)} URL",
            )


def _credentials(ctx: _Ctx, path: str, name: str, v: VenueSpec) -> None:
    creds = v.credentials
    if creds.passphrase is not None and v.kind is not VenueKind.OKX:
        ctx.add(f"{path}.credentials.passphrase", f"only OKX takes a passphrase, not {v.kind}")
    if v.mode is not Mode.LIVE:
        return
    needed = ["api_key", "api_secret"] + (["passphrase"] if v.kind is VenueKind.OKX else [])
    for key in needed:
        if getattr(creds, key) is None:
            ctx.add(
                f"{path}.credentials.{key}",
                f"required for a live {v.kind} venue ({{env: NAME}} or {{credential: NAME}})",
                at=f"{path}.mode",
            )


# --- pairs ------------------------------------------------------------------------------------


def _target(
    ctx: _Ctx,
    path: str,
    ref: str,
    venues: dict[str, Any],
    insts: dict[str, Instrument | None],
) -> tuple[Instrument | None, bool]:
    """(instrument, known): the instrument a "venue:symbol" names; known=False when the
    reference itself is wrong (reported here)."""
    venue, colon, symbol = ref.partition(":")
    if not colon or not venue or not symbol:
        ctx.add(path, f'expected "venue:symbol", got {ref!r}')
        return None, False
    if venue not in venues:
        ctx.add(path, f"no venue {venue!r} in venues{suggest(venue, venues)}")
        return None, False
    if f"{venue}:*" in insts:  # the venue itself failed to parse: already reported
        return None, True
    if ref not in insts:
        symbols = [k.partition(":")[2] for k in insts if k.startswith(f"{venue}:")]
        ctx.add(path, f"venue {venue} has no instrument {symbol!r}{suggest(symbol, symbols)}")
        return None, False
    return insts[ref], True


def _pairs(
    ctx: _Ctx,
    pairs: tuple[Any, ...],
    venues: dict[str, Any],
    insts: dict[str, Instrument | None],
) -> None:
    seen: dict[str, int] = {}
    for i, pair in enumerate(pairs):
        if pair is INVALID:
            continue
        assert isinstance(pair, PairSpec)
        path = f"pairs[{i}]"
        if not _PAIR_ID.fullmatch(pair.id):
            ctx.add(f"{path}.id", "letters, digits, _ . - only (it labels metrics)")
        if pair.id in seen:
            ctx.add(f"{path}.id", f"duplicate pair id {pair.id!r} (also pairs[{seen[pair.id]}])")
        seen.setdefault(pair.id, i)
        a, a_ok = _target(ctx, f"{path}.a", pair.a, venues, insts)
        b, b_ok = _target(ctx, f"{path}.b", pair.b, venues, insts)
        conv, conv_ok = (None, True)
        if pair.conversion is not None:
            conv, conv_ok = _target(ctx, f"{path}.conversion", pair.conversion, venues, insts)
        _amounts(ctx, path, pair)
        if a is None or b is None or not (a_ok and b_ok and conv_ok):
            continue
        if pair.conversion is not None and conv is None:
            continue
        if not _legs(ctx, path, pair, a, b, conv):
            continue
        for leg, inst in (("a", a), ("b", b)):
            _reachable(ctx, path, pair, leg, inst)
            venue = venues[inst.venue]
            if venue.mode is Mode.LIVE and not registry.available(venue.kind):
                ctx.add(
                    f"{path}.{leg}",
                    f"venue {inst.venue} is mode live, but this build has no live order "
                    f"gateway for {venue.kind}; trade it in mode paper",
                )
            elif (
                venue.mode is Mode.LIVE
                and pair.tif is TimeInForce.FOK
                and not registry.gateway_class(venue.kind).supports_fok
            ):
                ctx.add(
                    f"{path}.tif",
                    f"venue {inst.venue} ({venue.kind}) has no fill-or-kill orders; use IOC",
                )
            elif venue.mode is Mode.PAPER:
                _balances(ctx, path, pair, inst, venue)
        if ctx.problems.found and any(p.path.startswith(f"{path}.") for p in ctx.problems.found):
            continue
        fees = pair_fees(pair, venues)
        known = {k: v for k, v in insts.items() if v is not None}
        ctx.attempt(path, partial(build_pair_limits, pair, fees, known))
        ctx.attempt(path, partial(build_pair_config, pair, fees, known))
        ctx.attempt(path, partial(execution_policy, pair))


def _amounts(ctx: _Ctx, path: str, pair: PairSpec) -> None:
    if pair.min_edge_bps >= pair.max_edge_bps:
        ctx.add(
            f"{path}.max_edge_bps",
            f"must be above min_edge_bps ({pair.max_edge_bps} <= {pair.min_edge_bps})",
        )
    if pair.min_size > pair.max_size:
        ctx.add(f"{path}.min_size", f"above max_size ({pair.min_size} > {pair.max_size})")
    if pair.min_notional > pair.max_notional:
        ctx.add(
            f"{path}.min_notional",
            f"above max_notional ({pair.min_notional} > {pair.max_notional})",
        )


def _legs(
    ctx: _Ctx, path: str, pair: PairSpec, a: Instrument, b: Instrument, conv: Instrument | None
) -> bool:
    if a.name == b.name:
        ctx.add(f"{path}.b", f"both legs are {a.name}")
        return False
    if a.base != b.base:
        ctx.add(
            f"{path}.b",
            f"{b.name} trades {b.base}, {a.name} trades {a.base}: both legs must share the "
            "base asset",
        )
        return False
    if a.quote != b.quote:
        if conv is None:
            ctx.add(
                f"{path}.b",
                f"{a.name} is quoted in {a.quote} and {b.name} in {b.quote}: give a "
                f"conversion book trading {a.quote} against {b.quote}",
            )
            return False
        if {conv.base, conv.quote} != {a.quote, b.quote}:
            ctx.add(
                f"{path}.conversion",
                f"{conv.name} trades {conv.base}/{conv.quote}, not {a.quote} against {b.quote}",
            )
            return False
    elif conv is not None:
        ctx.add(
            f"{path}.conversion",
            f"both legs are quoted in {a.quote}: {conv.name} has nothing to convert",
        )
        return False
    return True


def _reachable(ctx: _Ctx, path: str, pair: PairSpec, leg: str, inst: Instrument) -> None:
    """Can any order of this leg pass both the venue's rules and the pair's limits?"""
    mult = Decimal(inst.multiplier.step)
    lot = Decimal(inst.size.format(inst.lot)) * mult
    min_size = Decimal(inst.size.format(inst.min_size)) * mult
    if pair.max_size < lot:
        ctx.add(
            f"{path}.max_size",
            f"{pair.max_size} {inst.base} is less than one lot of {inst.name} ({text(lot)})",
        )
    elif pair.max_size < min_size:
        ctx.add(
            f"{path}.max_size",
            f"{pair.max_size} {inst.base} is below {inst.name}'s minimum size "
            f"({text(min_size.normalize())})",
        )
    venue_min = Decimal(inst.min_notional)
    if pair.max_notional < venue_min:
        ctx.add(
            f"{path}.max_notional",
            f"{pair.max_notional} {inst.quote} is below {inst.name}'s minimum notional "
            f"({inst.min_notional}): no order could be placed",
        )


def _balances(ctx: _Ctx, path: str, pair: PairSpec, inst: Instrument, venue: VenueSpec) -> None:
    balances = venue.paper.balances
    if inst.derivative:
        # A futures account starts flat: its base balance is its position, which has an
        # entry price only once it was traded.
        if balances.get(inst.base, 0):
            ctx.add(
                f"venues.{inst.venue}.paper.balances.{inst.base}",
                f"{inst.venue} trades futures: it starts with no {inst.base} position; "
                f"give only its margin asset {inst.quote}",
            )
        uses: tuple[tuple[str, str], ...] = ((inst.quote, "pay fees with"),)
    else:
        uses = ((inst.quote, "buy with"), (inst.base, "sell"))
    for asset, use in uses:
        if asset not in balances:
            ctx.add(
                f"venues.{inst.venue}.paper.balances",
                f"no starting {asset} on paper venue {inst.venue} to {use} (pair {pair.id}); "
                f'give {asset}: "0" if that is meant',
                at=f"venues.{inst.venue}.paper"
                if f"venues.{inst.venue}.paper" in ctx.lines
                else f"venues.{inst.venue}",
            )


# --- risk ---------------------------------------------------------------------------------------


def _risk(
    ctx: _Ctx,
    risk: RiskSpec,
    pairs: tuple[Any, ...],
    venues: dict[str, Any],
    insts: dict[str, Instrument | None],
) -> None:
    assets: set[str] = set()
    traded: dict[str, list[str]] = {}  # base asset -> the pairs trading it
    for pair in pairs:
        if pair is INVALID:
            continue
        legs = [insts.get(ref) for ref in (pair.a, pair.b, pair.conversion) if ref is not None]
        for inst in legs:
            if inst is not None:
                assets.update((inst.base, inst.quote))
        base = next((inst.base for inst in legs[:2] if inst is not None), None)
        if base is not None:
            traded.setdefault(base, []).append(pair.id)
    for base, ids in traded.items():
        for key in ("max_inventory", "max_net_exposure"):
            if base not in getattr(risk, key):
                ctx.add(
                    f"risk.{key}",
                    f"no limit for {base} (traded by {', '.join(ids)}): every traded asset "
                    "needs one",
                )
    if assets and risk.reference not in assets:
        ctx.add(
            "risk.reference",
            f"{risk.reference} is not an asset of any pair ({', '.join(sorted(assets))}): "
            "PnL could not be valued in it",
        )


# --- simulator, metrics, control, journal ---------------------------------------------------


def _simulator(ctx: _Ctx, sim: SimulatorSpec, venues: dict[str, Any]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(sim.venues):
        path = f"simulator.venues[{i}]"
        if name in seen:
            ctx.add(path, f"{name} listed twice")
            continue
        seen.add(name)
        if name not in venues:
            ctx.add(path, f"no venue {name!r} in venues{suggest(name, venues)}")
            continue
        v = venues[name]
        if v is INVALID:
            continue
        vpath = f"venues.{name}"
        if v.mode is not Mode.PAPER:
            ctx.add(f"{vpath}.mode", "a simulated venue trades on paper only", at=path)
        ep = v.endpoints
        if ep.ws is not None or ep.rest is not None or ep.ws_orders is not None:
            ctx.add(f"{vpath}.endpoints", "a simulated venue's endpoints are the simulator's")
        table = SIM_INSTRUMENTS[v.kind]
        for symbol, spec in v.instruments.items():
            ipath = f"{vpath}.instruments.{symbol}"
            served = table.get(symbol)
            if served is None:
                ctx.add(
                    ipath,
                    f"the {v.kind} simulator has no {symbol} (it has {', '.join(table)})",
                )
                continue
            if spec is INVALID:
                continue
            for key in ("tick", "lot"):
                mine, theirs = getattr(spec, key), Decimal(getattr(served, key))
                if mine != theirs:
                    ctx.add(
                        f"{ipath}.{key}",
                        f"{text(mine)} differs from the simulator's {getattr(served, key)}",
                    )
    for key in ("dislocation_bps", "dislocation_s"):
        lo, hi = getattr(sim, key)
        if lo > hi:
            ctx.add(f"simulator.{key}", f"the range is backwards ({lo} > {hi})")
    ctx.attempt("simulator", partial(model_config, sim))


def _metrics(ctx: _Ctx, m: MetricsSpec) -> None:
    try:
        ipaddress.ip_address(m.host)
    except ValueError:
        if not _HOSTNAME.fullmatch(m.host):
            ctx.add("metrics.host", f"{m.host!r} is not an IP address or host name")


def _control(ctx: _Ctx, c: ControlSpec) -> None:
    if c.socket is None:
        return
    size = len(c.socket.encode())
    if not c.socket or size > _SUN_PATH_MAX:
        ctx.add(
            "control.socket",
            f"a Unix socket path must be 1 to {_SUN_PATH_MAX} bytes, this one is {size}",
        )
    elif "\0" in c.socket:
        ctx.add("control.socket", "a path cannot contain NUL")


def _journal(ctx: _Ctx, j: JournalSpec) -> None:
    if j.directory is not None and (not j.directory or "\0" in j.directory):
        ctx.add("journal.directory", "must be a non-empty path")
