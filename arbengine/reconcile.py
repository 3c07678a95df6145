"""Live venues' accounts against the engine's: at startup, and on a timer with a drift gate.

Startup (``Reconciler.startup``, before READY): for each live venue, with a bounded retry,
fetch its balances, open orders and (futures) positions. Open orders the engine does not
know are leftovers of an earlier run (or of a person): each is cancelled or adopted (left
resting) as ``reconcile.leftovers`` says, and journaled. Then the portfolio's balances of
that venue's traded assets are set to the venue's (a ``deposit`` of the difference: the
journal-recovered inventory and PnL stay as they were, the difference is not a trade we
know of), and one ``reconciled`` entry records what differed. A venue that cannot be
reached is a ``ReconcileError`` (one line): the daemon does not start.

What counts as the venue's balance of an asset is its total (free + locked) less what
adopted leftovers still lock: those funds are the leftover order's, not the engine's. On a
futures venue (``futures``) the base assets are the positions (contracts x multiplier) and
the quote is the venue's wallet balance, which the portfolio books as the venue does (a
futures fill moves it by realized PnL and the fee, see ``portfolio``). At startup a
contract whose position differs from the venue's is taken as the venue reports it, with
the venue's entry value (``Portfolio.set_contract``); where the positions agree, the
portfolio's own entry value (exact, from its fills) stays unless it is further from the
venue's than the venue's rounding of its entry price allows (``Position.entry_error``).
Resting orders lock nothing on a futures venue (margin is a requirement, not a transfer),
so adopted leftovers take nothing off its quote.

The ``reconciled`` entry shows the portfolio's balances after (``balances``), what
differed, the venue's raw totals (``venue_balances``) and, on a futures venue, its
positions (``positions``: per symbol ``size`` in size units, ``entry_value`` and
``entry_error`` in quote atoms) and the contracts taken from the venue (``contracts``:
per symbol the journal's and the venue's position and entry value, in atoms).

Periodic (``Reconciler.run``, every ``reconcile.interval_s``): for each live venue with
nothing in flight (no open order in the portfolio, no order submitted while its balances
were fetched), compare the venue's balances with the portfolio's (on a futures venue the
positions and the wallet). A difference beyond the asset's ``drift_tolerance`` journals
``balance_drift`` and holds the venue (new arbs there refused ``VENUE_UNHEALTHY``,
``RiskGates.hold``); a later round that agrees again releases it
(``balance_drift_cleared``). A round that cannot reach a venue changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp

from arbengine._core.instrument import Instrument
from arbengine.config_schema import Leftovers, ReconcileSpec
from arbengine.gateways.base import (
    Balance,
    GatewayError,
    LiveGateway,
    Position,
    Rejected,
    VenueOrder,
)
from arbengine.orders import AtomScale, Side, atoms
from arbengine.portfolio import Portfolio
from arbengine.risk import RiskGates

__all__ = [
    "DRIFT",
    "DRIFT_CLEARED",
    "LEFTOVER_ADOPTED",
    "LEFTOVER_CANCELLED",
    "RECONCILED",
    "ReconcileError",
    "Reconciler",
    "VenueCheck",
    "start_gateway",
]

RECONCILED = "reconciled"
LEFTOVER_CANCELLED = "leftover_cancelled"
LEFTOVER_ADOPTED = "leftover_adopted"
DRIFT = "balance_drift"
DRIFT_CLEARED = "balance_drift_cleared"

ATTEMPTS = 3  # each startup request to a venue, before it counts as unreachable
RETRY_S = (0.5, 1.0)  # waits between those attempts

T = TypeVar("T")

# What "could not get an answer" looks like from a gateway.
_FAILURES = (GatewayError, aiohttp.ClientError, TimeoutError, OSError)


class ReconcileError(Exception):
    """A live venue could not be reconciled (unreachable, or its answers unusable): one
    line naming the venue."""


class JournalLike(Protocol):
    def write(self, event: str, **fields: Any) -> int: ...


async def _retry(venue: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` with ``ATTEMPTS`` tries; ReconcileError (one line) if none answers."""
    last = ""
    for attempt in range(ATTEMPTS):
        try:
            return await call()
        except Rejected as exc:  # an answer (bad keys, no permission): asking again won't help
            reason = " ".join(str(exc).split())
            raise ReconcileError(f"venue {venue}: {what} refused: {reason}") from None
        except _FAILURES as exc:
            last = " ".join(f"{type(exc).__name__}: {exc}".split())
        if attempt < len(RETRY_S):
            await asyncio.sleep(RETRY_S[attempt])
    raise ReconcileError(f"venue {venue}: {what} failed {ATTEMPTS} times (last: {last})")


async def start_gateway(gw: LiveGateway) -> None:
    """``gw.start()`` (session, clock sync, order socket) with the bounded retry."""

    async def start() -> None:
        await gw.start()

    await _retry(gw.venue, "connecting (server time)", start)


@dataclass
class VenueCheck:
    """One venue's last comparison: what differed (asset -> (engine, venue) atoms)."""

    venue: str
    diffs: dict[str, tuple[int, int]] = field(default_factory=dict)
    drifted: dict[str, tuple[int, int]] = field(default_factory=dict)  # beyond tolerance
    positions: dict[str, Position] = field(default_factory=dict)  # futures: as the venue said
    skipped: str = ""  # why the round did not compare (in flight, unreachable)


class Reconciler:
    """The live venues' reconciliation; ``gates`` is read on each use (a reload replaces
    the gates: ``reapply`` puts the holds back on the new ones)."""

    def __init__(
        self,
        spec: ReconcileSpec,
        gateways: Mapping[str, LiveGateway],
        portfolio: Portfolio,
        journal: JournalLike,
        gates: Callable[[], RiskGates | None],
        *,
        instruments: Iterable[Instrument],
        futures: Collection[str] = (),
        log: Callable[..., None] | None = None,
    ) -> None:
        self.spec = spec
        self.gateways = dict(gateways)
        self.portfolio = portfolio
        self.journal = journal
        self.gates = gates
        self.log = log
        self.tolerance = {asset: atoms(amount) for asset, amount in spec.drift_tolerance.items()}
        self.futures = set(futures)
        self.assets: dict[str, set[str]] = {name: set() for name in self.gateways}
        self.bases: dict[str, set[str]] = {name: set() for name in self.gateways}
        self.instruments: dict[tuple[str, str], Instrument] = {}
        for inst in instruments:
            if inst.venue in self.assets:
                self.assets[inst.venue].update((inst.base, inst.quote))
                self.bases[inst.venue].add(inst.base)
                self.instruments[(inst.venue, inst.symbol)] = inst
        self.adopted: dict[str, dict[str, VenueOrder]] = {name: {} for name in self.gateways}
        self.held: dict[str, str] = {}  # venue -> why
        self.last: dict[str, VenueCheck] = {}
        self.rounds = 0
        self.drifts = 0

    # -- startup -----------------------------------------------------------------------------

    async def startup(self, known: Collection[str] = ()) -> dict[str, VenueCheck]:
        """Reconcile every live venue (``known``: client ids the engine itself tracks, which
        are not leftovers). ReconcileError if a venue cannot be reached."""
        out: dict[str, VenueCheck] = {}
        for name in sorted(self.gateways):
            out[name] = await self._startup_venue(name, known)
        return out

    async def _startup_venue(self, name: str, known: Collection[str]) -> VenueCheck:
        gw = self.gateways[name]
        orders = await _retry(name, "open orders", gw.open_orders)
        cancelled: list[str] = []
        adopted: list[str] = []
        for order in orders:
            if order.client_id in known:
                continue
            if self.spec.leftovers is Leftovers.ADOPT:
                self.adopted[name][order.client_id] = order
                adopted.append(order.client_id)
                self.journal.write(LEFTOVER_ADOPTED, venue=name, **_order_fields(order))
                continue
            await self._cancel(name, gw, order)
            cancelled.append(order.client_id)
        if cancelled:
            still = await _retry(name, "open orders", gw.open_orders)
            left = sorted(o.client_id for o in still if o.client_id in cancelled)
            if left:
                raise ReconcileError(
                    f"venue {name}: leftover orders still open after cancelling: {', '.join(left)}"
                )
        balances = await _retry(name, "balances", gw.balances)
        positions = await _retry(name, "positions", gw.positions)
        check = VenueCheck(name, positions=dict(positions))
        if self.portfolio.open_orders(name):
            # An order recovered from the journal is still unresolved: its fills may be in
            # the venue's balances and not yet in ours. The periodic rounds compare later.
            check.skipped = "orders in flight"
        taken: dict[str, dict[str, list[int]]] = {}
        if name in self.futures and not check.skipped:
            taken = self._take_contracts(name, positions, check)
        for asset in sorted(self.assets[name] | self._held_assets(name, balances)):
            if check.skipped:
                break
            ours = self.portfolio.balance(name, asset)
            theirs = self._venue_amount(name, asset, balances, positions)
            if ours != theirs:
                check.diffs[asset] = (ours, theirs)
                self.portfolio.deposit(name, asset, theirs - ours)
        futures: dict[str, Any] = {}
        if name in self.futures:
            futures["positions"] = _positions_fields(positions)
            futures["contracts"] = taken
        self.journal.write(
            RECONCILED,
            venue=name,
            source="venue",
            balances={a: self.portfolio.balance(name, a) for a in sorted(self.assets[name])},
            differed={a: {"journal": o, "venue": t} for a, (o, t) in check.diffs.items()},
            venue_balances={a: b.total for a, b in sorted(balances.items())},
            **futures,
            leftovers_cancelled=cancelled,
            leftovers_adopted=adopted,
            deferred=check.skipped,
        )
        self.last[name] = check
        return check

    def _held_assets(self, name: str, balances: Mapping[str, Balance]) -> set[str]:
        """Assets the portfolio already holds on ``name`` (a recovered balance the venue no
        longer shows must come down to zero)."""
        return {a for (v, a), n in self.portfolio.balances().items() if v == name and n}

    async def _cancel(self, name: str, gw: LiveGateway, order: VenueOrder) -> None:
        async def cancel() -> VenueOrder | None:
            return await gw.cancel(order.client_id, order.symbol)

        after = await _retry(name, f"cancelling leftover {order.client_id}", cancel)
        # None: the venue no longer has it open (it finished meanwhile); the balances
        # fetched next include whatever it did.
        fields = _order_fields(after if after is not None else order)
        self.journal.write(LEFTOVER_CANCELLED, venue=name, found=after is not None, **fields)

    def _take_contracts(
        self, name: str, positions: Mapping[str, Position], check: VenueCheck
    ) -> dict[str, dict[str, list[int]]]:
        """Set each of ``name``'s contracts the venue disagrees on to the venue's position
        and entry value; what was taken, per symbol (journal and venue, each [position,
        entry])."""
        pf = self.portfolio
        taken: dict[str, dict[str, list[int]]] = {}
        for (venue, symbol), inst in sorted(self.instruments.items()):
            if venue != name or not inst.derivative:
                continue
            pos = positions.get(symbol, Position(0, 0, 0))
            theirs = (AtomScale.of(inst).base(pos.size), pos.entry_value)
            ours = pf.contract(name, symbol)
            if ours[0] == theirs[0] and abs(ours[1] - theirs[1]) <= pos.entry_error:
                continue
            before = pf.balance(name, inst.base)
            pf.set_contract(inst, *theirs)
            if theirs[0] != ours[0]:
                check.diffs[inst.base] = (before, pf.balance(name, inst.base))
            taken[symbol] = {"journal": list(ours), "venue": list(theirs)}
        return taken

    def _venue_amount(
        self,
        name: str,
        asset: str,
        balances: Mapping[str, Balance],
        positions: Mapping[str, Position],
    ) -> int:
        """The venue's total of ``asset`` less what adopted leftovers still lock (on a
        futures venue, a base asset is its positions and a quote its wallet, which no
        order locks)."""
        if name in self.futures and asset in self.bases[name]:
            total = 0
            for symbol, pos in positions.items():
                inst = self.instruments.get((name, symbol))
                if inst is not None and inst.base == asset:
                    total += AtomScale.of(inst).base(pos.size)
            return total
        b = balances.get(asset)
        total = 0 if b is None else b.total
        if name in self.futures:
            return total
        for order in self.adopted[name].values():
            locked_asset, amount = self._locks(name, order)
            if locked_asset == asset:
                total -= amount
        return total

    def _locks(self, name: str, order: VenueOrder) -> tuple[str, int]:
        inst = self.instruments.get((name, order.symbol))
        if inst is None:
            return "", 0
        scale = AtomScale.of(inst)
        left = max(0, order.size - order.filled)
        if order.side == Side.BUY:
            return inst.quote, scale.notional(order.price, left)
        return inst.base, scale.base(left)

    # -- periodic ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Every ``interval_s``: ``check_all`` (a venue's failure is logged, never raised)."""
        interval = float(self.spec.interval_s)
        while True:
            await asyncio.sleep(interval)
            await self.check_all()

    async def check_all(self) -> dict[str, VenueCheck]:
        self.rounds += 1
        out: dict[str, VenueCheck] = {}
        for name in sorted(self.gateways):
            out[name] = self.last[name] = await self.check(name)
        return out

    async def check(self, name: str) -> VenueCheck:
        """Compare ``name``'s balances with the portfolio's; hold or release on the result."""
        gw = self.gateways[name]
        check = VenueCheck(name)
        if self.portfolio.open_orders(name):
            check.skipped = "orders in flight"
            return check
        submitted = gw.counters.submitted
        futures = name in self.futures
        positions: dict[str, Position] = {}
        try:
            balances = await gw.balances()
            if futures:
                positions = await gw.positions()
                check.positions = dict(positions)
            if self.adopted[name]:
                await self._refresh_adopted(name, gw)
        except _FAILURES as exc:
            check.skipped = " ".join(f"unreachable: {type(exc).__name__}: {exc}".split())
            self._log("reconcile skipped", venue=name, why=check.skipped)
            return check
        if gw.counters.submitted != submitted or self.portfolio.open_orders(name):
            check.skipped = "orders in flight"
            return check
        for asset in sorted(self.assets[name]):
            ours = self.portfolio.balance(name, asset)
            theirs = self._venue_amount(name, asset, balances, positions)
            if ours != theirs:
                check.diffs[asset] = (ours, theirs)
                if abs(theirs - ours) > self.tolerance.get(asset, 0):
                    check.drifted[asset] = (ours, theirs)
        if check.drifted:
            self._hold(name, check)
        elif name in self.held:
            self._release(name, check)
        return check

    async def _refresh_adopted(self, name: str, gw: LiveGateway) -> None:
        """Adopted leftovers still open (their locks); a finished one leaves the set, and
        what it traded shows as drift: it was not the engine's trade."""
        still = {o.client_id: o for o in await gw.open_orders()}
        self.adopted[name] = {cid: still[cid] for cid in self.adopted[name] if cid in still}

    def _hold(self, name: str, check: VenueCheck) -> None:
        self.drifts += 1
        why = "balance drift: " + ", ".join(
            f"{asset} engine {ours} venue {theirs}"
            for asset, (ours, theirs) in sorted(check.drifted.items())
        )
        first = name not in self.held
        self.held[name] = why
        gates = self.gates()
        if gates is not None:
            gates.hold(name, why)
        drift = {
            a: {"engine": o, "venue": t, "tolerance": self.tolerance.get(a, 0)}
            for a, (o, t) in check.drifted.items()
        }
        futures: dict[str, Any] = {}
        if name in self.futures:
            futures["positions"] = _positions_fields(check.positions)
        self.journal.write(DRIFT, venue=name, held=True, new=first, drift=drift, **futures)
        self._log("balance drift: venue held", venue=name, assets=sorted(check.drifted))

    def _release(self, name: str, check: VenueCheck) -> None:
        why = self.held.pop(name)
        gates = self.gates()
        if gates is not None:
            gates.release(name)
        self.journal.write(
            DRIFT_CLEARED,
            venue=name,
            was=why,
            within_tolerance={a: {"engine": o, "venue": t} for a, (o, t) in check.diffs.items()},
        )
        self._log("balance drift cleared: venue released", venue=name)

    def reapply(self) -> None:
        """Put the holds on the current gates (after a reload rebuilt them)."""
        gates = self.gates()
        if gates is None:
            return
        for name, why in self.held.items():
            gates.hold(name, why)

    def _log(self, message: str, **fields: Any) -> None:
        if self.log is not None:
            self.log(message, **fields)


def _positions_fields(positions: Mapping[str, Position]) -> dict[str, dict[str, int]]:
    return {
        symbol: {"size": p.size, "entry_value": p.entry_value, "entry_error": p.entry_error}
        for symbol, p in sorted(positions.items())
    }


def _order_fields(order: VenueOrder) -> dict[str, Any]:
    return {
        "client_id": order.client_id,
        "venue_order_id": order.venue_order_id,
        "symbol": order.symbol,
        "side": order.side.name,
        "price": order.price,
        "size": order.size,
        "filled": order.filled,
        "status": order.status.name,
        "venue_status": order.venue_status,
    }
