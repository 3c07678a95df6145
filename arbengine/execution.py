"""Two-leg execution: both legs out at once, then every fill accounted for.

An arb is two IOC/FOK limit orders at the spread calculator's prices, handed to their
gateways back to back (``submit`` never blocks, so the second leg follows the first by
microseconds). When both legs are final the arb settles: equal base fills mean a clean arb;
otherwise the excess is hedged by the pair's leg-failure policy:

* ``UNWIND`` gives the excess back on the venue where it was filled (sell what was over-bought
  there, buy back what was over-sold);
* ``CHASE`` completes the missing leg on the other venue.

Hedges are IOC at the current best price moved by at most ``max_slippage_bps``, retried until
``leg_deadline_s``; whatever is left is unhedged exposure, reported to the portfolio view the
risk gates read (``exposure``), and journaled.

An order with no final state after ``order_timeout_s`` is UNKNOWN: possible exposure, its
reservation is kept, and the gateway is asked for its state by client id until it answers.
It is never assumed rejected; a late fill is applied when it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.journal import Journal, fill_fields, order_fields
from arbengine.orders import (
    AtomScale,
    Fill,
    Gateway,
    Order,
    OrderStatus,
    Purpose,
    Side,
    TimeInForce,
)
from arbengine.recovery import RecoveredArb, order_state

# Enum members read through their class cost ~0.1 us each (more when cold); the hand-off
# reads them from module globals.
_BUY, _SELL = Side.BUY, Side.SELL
_ENTRY = Purpose.ENTRY
_SENT = OrderStatus.SENT
# What a prepared leg holds until ``send`` gives it its arb's instrument (never sent).
_NOT_YET = Instrument("-", "-", "-", "-", "1", "1")

# What ``Executor.send`` hands to ``Executor.open``: the buy and sell orders, the ones a
# raising ``submit`` kept from going out, and that error.
Legs = tuple[Order, Order, tuple[Order, ...], Exception | None]


class LegPolicy(StrEnum):
    UNWIND = "unwind"
    CHASE = "chase"


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    tif: TimeInForce = TimeInForce.IOC
    leg_policy: LegPolicy = LegPolicy.UNWIND
    max_slippage_bps: Decimal = Decimal(20)
    leg_deadline_s: float = 2.0
    order_timeout_s: float = 1.0
    query_interval_s: float = 0.25

    def __post_init__(self) -> None:
        if self.max_slippage_bps < 0:
            raise ValueError(f"max_slippage_bps must be >= 0, got {self.max_slippage_bps}")
        for name in ("leg_deadline_s", "order_timeout_s", "query_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(slots=True)
class Opportunity:
    """What the engine found and the risk gates passed: one arb's two legs."""

    arb_id: str
    pair_id: str
    buy: Instrument
    sell: Instrument
    buy_price: int
    buy_size: int
    sell_price: int
    sell_size: int
    # The net edge in bps, exactly edge_num / edge_den: the hot path compares it in
    # integers and only the journal (after the hand-off) turns it into a Decimal.
    edge_num: int
    edge_den: int
    recv_ns: int  # the triggering frame's receive time (monotonic)
    applied_ns: int = 0  # the book change handed to the engine
    found_ns: int = 0
    risk_ns: int = 0
    # The size both legs were sized to, base units: base_qty x 10**-size_decimals. Kept as
    # ints on the hot path, like the edge; ``size`` makes the Decimal for the journal.
    base_qty: int = 0
    size_decimals: int = 0

    @property
    def size(self) -> Decimal:
        return Decimal(self.base_qty).scaleb(-self.size_decimals)

    @property
    def edge_bps(self) -> Decimal:
        """The edge as the journal shows it, to 0.0001 bps."""
        return edge_decimal(self.edge_num, self.edge_den)


_BPS_QUANTUM = Decimal("0.0001")


def edge_decimal(num: int, den: int) -> Decimal:
    """An exact edge fraction as a Decimal to 0.0001 bps (half-even)."""
    return (Decimal(num) / Decimal(den)).quantize(_BPS_QUANTUM)


def edge_ratio(edge_bps: Decimal | int) -> tuple[int, int]:
    """A Decimal edge (a journaled one, a config value) as an exact fraction."""
    num, den = Decimal(edge_bps).as_integer_ratio()
    return num, den


class ArbState(StrEnum):
    OPEN = "open"  # entry legs in flight
    HEDGING = "hedging"
    DONE = "done"


@dataclass(slots=True)
class Arb:
    opp: Opportunity
    policy: ExecutionPolicy
    legs: list[Order]
    hedges: list[Order] = field(default_factory=list)
    state: ArbState = ArbState.OPEN
    deadline_ns: int = 0
    residual: int = 0  # base atoms left unhedged: > 0 long, < 0 short
    asset: str = ""
    # A flatten (``Executor.flatten``): no legs, one FLATTEN order whose fills are meant to
    # stay: they take the portfolio's holding of ``asset`` towards zero.
    flatten: bool = False

    @property
    def arb_id(self) -> str:
        return self.opp.arb_id


class PortfolioOps(Protocol):
    """What execution needs of the portfolio."""

    def reserve(self, order: Order, fee_bps: Decimal) -> None: ...

    def on_fill(self, order: Order, fill: Fill) -> None: ...

    def on_done(self, order: Order) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...

    def inventory(self, asset: str) -> int: ...


class RiskFeedback(Protocol):
    def record_result(self, venue: str, result: str) -> None: ...

    def check_hedge(self, order: Order) -> IntEnum: ...  # 0 (OK) passes


class Executor:
    """Sends arbs and hedges to the gateways and follows every order to its end."""

    def __init__(
        self,
        gateways: Mapping[str, Gateway],
        portfolio: PortfolioOps,
        journal: Journal,
        *,
        fee_bps: Mapping[str, Decimal],
        books: Callable[[Instrument], Book | None],
        risk: RiskFeedback | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        keep_settled: int = 10_000,
    ) -> None:
        self.gateways = dict(gateways)
        self.portfolio = portfolio
        self.journal = journal
        self.fee_bps = dict(fee_bps)
        self.books = books
        self.risk = risk
        self.clock = clock
        # Open arbs, and the most recent ``keep_settled`` settled ones (a late report of a
        # trade still finds its order); older ones are forgotten: a daemon runs for weeks, and
        # the journal, not memory, is the record.
        self.arbs: dict[str, Arb] = {}
        self.orders: dict[str, tuple[Order, Arb]] = {}
        self._open: dict[str, Arb] = {}
        self._settled: deque[Arb] = deque()
        self.keep_settled = keep_settled
        self.exposure: dict[str, int] = {}  # base atoms left unhedged, by asset
        self.counters: dict[str, int] = {}
        self._scales: dict[int, AtomScale] = {}
        # Per instrument (by identity), where its orders go and the fee rate they reserve:
        # looked up twice per arb before the hand-off, so worked out once.
        self._routes: dict[Instrument, tuple[Gateway, Decimal]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The next arb's two orders, built ahead by ``prepare``: (arb id, buy, sell).
        self._prepared: tuple[str, Order, Order] | None = None
        # Per instrument and side: the gateway's ``warm`` and the order it renders (None: the
        # gateway has nothing to warm, e.g. the paper one).
        self._warm: dict[tuple[Instrument, Side], tuple[Callable[[Order], bool], Order] | None] = {}
        for gateway in self.gateways.values():
            gateway.set_listener(self)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def scale(self, inst: Instrument) -> AtomScale:
        scale = self._scales.get(id(inst))
        if scale is None:
            scale = self._scales[id(inst)] = AtomScale.of(inst)
        return scale

    # -- sending ---------------------------------------------------------------------------

    def _route(self, inst: Instrument) -> tuple[Gateway, Decimal]:
        """The gateway ``inst``'s orders go to and the fee rate they reserve."""
        route = self._routes.get(inst)
        if route is None:
            route = self._routes[inst] = (self.gateways[inst.venue], self.fee_bps[inst.venue])
        return route

    def execute(self, opp: Opportunity, policy: ExecutionPolicy, send_by_ns: int) -> Arb | None:
        """Both legs out now, or nothing if ``send_by_ns`` (the budget) has passed.

        ``send`` then ``open``: the engine calls the two itself so that the Opportunity is
        built after the legs are out. If a ``submit`` raises (a caller bug), the legs already
        handed off are followed as usual, the others end REJECTED, and the error propagates.
        """
        legs = self.send(
            opp.arb_id,
            opp.pair_id,
            opp.buy,
            opp.buy_price,
            opp.buy_size,
            opp.sell,
            opp.sell_price,
            opp.sell_size,
            policy.tif,
            send_by_ns,
        )
        if legs is None:
            return None
        return self.open(opp, policy, legs)

    def send(
        self,
        arb_id: str,
        pair_id: str,
        buy_inst: Instrument,
        buy_price: int,
        buy_size: int,
        sell_inst: Instrument,
        sell_price: int,
        sell_size: int,
        tif: TimeInForce,
        send_by_ns: int,
    ) -> Legs | None:
        """Hand both legs to their gateways now (None, journaled, if ``send_by_ns`` has
        passed), and nothing else: the arb must then be ``open``-ed with them, which
        reserves, registers and journals it. Nothing a gateway reports can run in between
        (one event loop, and ``submit`` never calls back), and the next arb's gates run after
        ``open`` too, so they see the reservations. A raising ``submit`` is caught and
        carried in the Legs for ``open`` to settle and re-raise."""
        now = self.clock()
        if now > send_by_ns:
            self._count("past_budget")
            self.journal.write(
                "arb_dropped",
                arb_id=arb_id,
                pair_id=pair_id,
                reason="past_budget",
                late_ns=now - send_by_ns,
            )
            return None
        buy_gateway = (self._routes.get(buy_inst) or self._route(buy_inst))[0]
        sell_gateway = (self._routes.get(sell_inst) or self._route(sell_inst))[0]
        prepared = self._prepared
        if prepared is not None and prepared[0] == arb_id:
            # Built ahead (``prepare``): only what this arb decides is filled in.
            self._prepared = None
            buy, sell = prepared[1], prepared[2]
            buy.instrument, buy.price, buy.size, buy.tif = buy_inst, buy_price, buy_size, tif
            sell.instrument, sell.price, sell.size, sell.tif = sell_inst, sell_price, sell_size, tif
        else:
            buy, sell = self._legs(
                arb_id, buy_inst, buy_price, buy_size, sell_inst, sell_price, sell_size, tif
            )
        buy.created_ns = sell.created_ns = now
        try:
            buy.sent_ns = buy_gateway.submit(buy)
        except Exception as exc:
            return (buy, sell, (buy, sell), exc)
        try:
            sell.sent_ns = sell_gateway.submit(sell)
        except Exception as exc:
            return (buy, sell, (sell,), exc)
        return (buy, sell, (), None)

    def warm(self, buy_inst: Instrument, sell_inst: Instrument) -> None:
        """Run the hand-off of an arb buying ``buy_inst`` and selling ``sell_inst`` through
        each gateway's ``warm`` (their ``submit`` up to the write, with no effect), so the
        next real one finds its code and data in the caches. Gateways without ``warm`` are
        skipped."""
        for key in ((buy_inst, _BUY), (sell_inst, _SELL)):
            try:
                target = self._warm[key]
            except KeyError:
                target = self._warm[key] = self._warm_target(*key)
            if target is not None:
                target[0](target[1])

    def _warm_target(
        self, inst: Instrument, side: Side
    ) -> tuple[Callable[[Order], bool], Order] | None:
        gateway = self.gateways.get(inst.venue)
        warm = getattr(gateway, "warm", None)
        if warm is None:
            return None
        # The smallest price and size the grids have: a request like any other, never sent.
        order = Order(f"warm-{side.name[0]}", "warm", inst, side, 1, 1, TimeInForce.IOC)
        return warm, order

    def prepare(self, arb_id: str) -> None:
        """Build the two orders of the arb that will be ``arb_id`` now, off the arb path:
        ``send`` for that id then fills in its instruments, prices, sizes and time in force
        instead of constructing them (two dataclass inits, cache-cold, on every arb)."""
        self._prepared = (
            arb_id,
            *self._legs(arb_id, _NOT_YET, 0, 0, _NOT_YET, 0, 0, TimeInForce.IOC),
        )

    @staticmethod
    def _legs(
        arb_id: str,
        buy_inst: Instrument,
        buy_price: int,
        buy_size: int,
        sell_inst: Instrument,
        sell_price: int,
        sell_size: int,
        tif: TimeInForce,
    ) -> tuple[Order, Order]:
        # Positional: keywords cost more in Order's generated __init__.
        return (
            Order(arb_id + "-B", arb_id, buy_inst, _BUY, buy_price, buy_size, tif, _ENTRY, _SENT),
            Order(
                arb_id + "-S", arb_id, sell_inst, _SELL, sell_price, sell_size, tif, _ENTRY, _SENT
            ),
        )

    def open(self, opp: Opportunity, policy: ExecutionPolicy, legs: Legs) -> Arb:
        """Everything after ``send``: the arb reserved, registered, journaled and followed.
        Re-raises the error a ``submit`` raised, once the arb is settled around it."""
        buy, sell, unsent, error = legs
        arb = self._open_arb(opp, policy, buy, sell, unsent, error)
        if error is not None:
            raise error
        return arb

    def _open_arb(
        self,
        opp: Opportunity,
        policy: ExecutionPolicy,
        buy: Order,
        sell: Order,
        unsent: tuple[Order, ...],
        error: Exception | None,
    ) -> Arb:
        """Everything of ``execute`` that can wait until the legs are out. ``unsent``: the
        legs a raising ``submit`` kept from going out (the sell is not tried after the buy
        failed: alone it would be all exposure)."""
        arb_id = opp.arb_id
        arb = Arb(opp, policy, [buy, sell], asset=opp.buy.base)
        self.arbs[arb_id] = self._open[arb_id] = arb
        self.orders[buy.client_id] = (buy, arb)
        self.orders[sell.client_id] = (sell, arb)
        for order in unsent:
            order.status = OrderStatus.NEW
        # An unsent leg is reserved and journaled like a sent one, then released by its
        # REJECTED "done" below, so a replay of the journal gives the same portfolio.
        reserve = self.portfolio.reserve
        routes = self._routes
        reserve(buy, routes[buy.instrument][1])
        reserve(sell, routes[sell.instrument][1])
        self._count("arbs")
        # The arb entry comes first so a replay meets the arb before its orders.
        self.journal.write(
            "arb",
            arb_id=arb_id,
            pair_id=opp.pair_id,
            buy=opp.buy.name,
            sell=opp.sell.name,
            edge_bps=str(opp.edge_bps),
            size=opp.size,
            recv_ns=opp.recv_ns,
            applied_ns=opp.applied_ns,
            found_ns=opp.found_ns,
            risk_ns=opp.risk_ns,
            sent_ns=[buy.sent_ns, sell.sent_ns],
        )
        self._journal_order(buy)
        self._journal_order(sell)
        if not unsent:
            self._watch(policy, buy, sell)
            return arb
        if unsent[0] is sell:  # the buy went out: it is followed like any order
            self._watch(policy, buy)
        assert error is not None
        reason = f"not sent: {type(error).__name__}: {error}"
        for order in unsent:
            # It never reached its venue, so it says nothing about the venue's health.
            self._order_done(order, OrderStatus.REJECTED, reason, self.clock(), feedback=False)
        return arb

    def _journal_order(self, order: Order) -> None:
        # The reserved fee rate goes with the order: a replay must reserve exactly the same.
        fee_bps = self._route(order.instrument)[1]
        self.journal.write("order", **order_fields(order), fee_bps=fee_bps)

    def _watch(self, policy: ExecutionPolicy, *orders: Order) -> None:
        # One timer for orders sent together: they all time out at the same moment.
        asyncio.get_running_loop().call_later(policy.order_timeout_s, self._timeout, *orders)

    # -- gateway events ---------------------------------------------------------------------

    def on_ack(self, order: Order, ts_ns: int) -> None:
        if order.status in (OrderStatus.SENT, OrderStatus.UNKNOWN):
            order.status = OrderStatus.ACKED
        order.acked_ns = ts_ns
        self.journal.write("ack", arb_id=order.arb_id, client_id=order.client_id, ts_ns=ts_ns)

    def on_fill(self, order: Order, fill: Fill) -> None:
        inst = order.instrument
        if fill.trade_id and any(f.trade_id == fill.trade_id for f in order.fills):
            # The same trade twice: a late report of a fill the venue's answer to a query
            # already gave us (or a feed replaying it). Counted once, here and everywhere.
            self._count("duplicate_fills")
            return
        order.record(fill)
        self.portfolio.on_fill(order, fill)
        self.journal.write("fill", arb_id=order.arb_id, side=order.side, **fill_fields(fill, inst))
        entry = self.orders.get(order.client_id)
        if entry is not None and entry[1].state == ArbState.DONE:
            self._resettle(entry[1])

    def _resettle(self, arb: Arb) -> None:
        """A fill after the arb settled (a venue reporting a trade after its final state):
        whatever it changed is unhedged exposure now."""
        residual = self._residual(arb)
        delta = residual - arb.residual
        if not delta:
            return
        arb.residual = residual
        self.exposure[arb.asset] = self.exposure.get(arb.asset, 0) + delta
        self._count("fills_after_settle")
        self.journal.write(
            "arb_residual",
            arb_id=arb.arb_id,
            asset=arb.asset,
            residual_atoms=residual,
            delta_atoms=delta,
        )

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        self._order_done(order, status, reason, ts_ns)

    def _order_done(
        self, order: Order, status: OrderStatus, reason: str, ts_ns: int, *, feedback: bool = True
    ) -> None:
        if order.status.done:
            return
        was_unknown = order.status == OrderStatus.UNKNOWN
        order.status = status
        order.reason = reason
        order.done_ns = ts_ns
        self.portfolio.on_done(order)
        self.journal.write(
            "done",
            arb_id=order.arb_id,
            client_id=order.client_id,
            status=status.value,
            reason=reason,
            filled=order.instrument.size.format(order.filled),
            resolved_unknown=was_unknown,
        )
        if feedback and self.risk is not None:
            failed = status == OrderStatus.REJECTED or (
                order.purpose == Purpose.ENTRY and order.filled < order.size
            )
            self.risk.record_result(order.venue, "reject" if failed else "ok")
        entry = self.orders.get(order.client_id)
        if entry is not None:
            self._progress(entry[1])

    # -- timeouts and unknown outcomes ---------------------------------------------------------

    def _timeout(self, *orders: Order) -> None:
        for order in orders:
            if order.status.done:
                continue
            self._mark_unknown(order)
            if self.risk is not None:
                self.risk.record_result(order.venue, "timeout")
            self._start_resolving(order)

    def _mark_unknown(self, order: Order, **extra: object) -> None:
        """No final state known: possible exposure until the venue answers a query."""
        order.status = OrderStatus.UNKNOWN
        self._count("unknown")
        self._count(f"unknown:{order.venue}")
        self.journal.write(
            "unknown", arb_id=order.arb_id, client_id=order.client_id, venue=order.venue, **extra
        )

    def _start_resolving(self, order: Order) -> None:
        task = asyncio.get_running_loop().create_task(self._resolve(order))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, order: Order) -> None:
        """Ask the venue until it tells us how the order ended."""
        arb = self.orders[order.client_id][1]
        gateway = self.gateways[order.venue]
        while not order.status.done:
            await asyncio.sleep(arb.policy.query_interval_s)
            if order.status.done:
                return
            try:
                state = await gateway.query(order.client_id)
            except Exception as exc:  # a failing query is retried, never taken as an answer
                self.journal.write("query_failed", client_id=order.client_id, error=str(exc))
                continue
            if state is None:
                # The venue never saw it: nothing filled, nothing will.
                self.on_done(order, OrderStatus.REJECTED, "unknown to venue", self.clock())
            elif state.status.done:
                self._catch_up(order, state)

    def _catch_up(self, order: Order, state: Order) -> None:
        """Apply the venue's fills that never reached us, then its final state."""
        for fill in state.fills[len(order.fills) :]:
            self.on_fill(order, fill)
        self.on_done(order, state.status, state.reason or "resolved by query", self.clock())

    # -- settling -----------------------------------------------------------------------------

    def _progress(self, arb: Arb) -> None:
        if arb.state == ArbState.DONE:
            return
        if any(not o.status.done for o in arb.legs + arb.hedges):
            return
        residual = self._residual(arb)
        if residual == 0 or arb.flatten:
            # A flatten's fills are its purpose, never a residual to hedge back.
            self._finish(arb, residual)
            return
        if arb.state == ArbState.OPEN:
            arb.state = ArbState.HEDGING
            arb.deadline_ns = self.clock() + int(arb.policy.leg_deadline_s * 1e9)
            self._count("leg_failures")
            self.journal.write(
                "leg_failure",
                arb_id=arb.arb_id,
                residual_atoms=residual,
                asset=arb.asset,
                policy=arb.policy.leg_policy,
            )
        if self.clock() >= arb.deadline_ns or not self._hedge(arb, residual):
            self._finish(arb, residual)

    def _residual(self, arb: Arb) -> int:
        """Base atoms bought minus sold over the arb's orders: > 0 means long."""
        total = 0
        for order in arb.legs + arb.hedges:
            total += order.side * self.scale(order.instrument).base(order.filled)
        return total

    def _hedge(self, arb: Arb, residual: int) -> bool:
        """Send one hedge for ``residual``; False when none can be sent."""
        buy_inst, sell_inst = arb.opp.buy, arb.opp.sell
        side = Side.SELL if residual > 0 else Side.BUY
        if arb.policy.leg_policy == LegPolicy.UNWIND:
            inst = buy_inst if residual > 0 else sell_inst
        else:
            inst = sell_inst if residual > 0 else buy_inst
        scale = self.scale(inst)
        size = abs(residual) // scale.base_per_size
        size -= size % inst.lot
        if size <= 0 or size < inst.min_size:
            return False  # dust below the lot: stays as exposure
        book = self.books(inst)
        if book is None:
            return False
        top = book.best_bid() if side == Side.SELL else book.best_ask()
        if top is None:
            return False
        price = _slipped(top[0], side, arb.policy.max_slippage_bps, inst)
        n = len(arb.hedges) + 1
        order = Order(
            f"{arb.arb_id}-H{n}",
            arb.arb_id,
            inst,
            side,
            price,
            size,
            TimeInForce.IOC,
            Purpose.UNWIND if arb.policy.leg_policy == LegPolicy.UNWIND else Purpose.CHASE,
        )
        if self.risk is not None:
            verdict = self.risk.check_hedge(order)
            if verdict:
                self.journal.write("hedge_blocked", arb_id=arb.arb_id, reason=verdict.name)
                return False
        try:
            fee_bps = self._hand_off(order)
        except Exception as exc:
            # Nothing went out: the residual stays as exposure, and the caller bug surfaces.
            self.journal.write(
                "hedge_blocked",
                arb_id=arb.arb_id,
                reason=f"not sent: {type(exc).__name__}: {exc}",
            )
            self._finish(arb, residual)
            raise
        self._add_hedge(arb, order, fee_bps)
        self._count("hedges")
        self._journal_order(order)
        self._watch(arb.policy, order)
        return True

    def _hand_off(self, order: Order) -> Decimal:
        """A hedge or flatten order to its gateway, before anything else is done with it
        (as for the legs, see ``send``); the fee rate it reserves."""
        gateway, fee_bps = self._route(order.instrument)
        order.created_ns = self.clock()
        order.status = OrderStatus.SENT
        order.sent_ns = gateway.submit(order)
        return fee_bps

    def _add_hedge(self, arb: Arb, order: Order, fee_bps: Decimal) -> None:
        arb.hedges.append(order)
        self.orders[order.client_id] = (order, arb)
        self.portfolio.reserve(order, fee_bps)

    def _finish(self, arb: Arb, residual: int) -> None:
        arb.state = ArbState.DONE
        arb.residual = residual
        self._open.pop(arb.arb_id, None)
        self._settled.append(arb)
        while len(self._settled) > self.keep_settled:
            old = self._settled.popleft()
            self.arbs.pop(old.arb_id, None)
            for order in old.legs + old.hedges:
                self.orders.pop(order.client_id, None)
        if residual:
            # A flatten's is what it traded: it moves the unhedged figure towards zero with
            # the holding. An arb's is what its hedges could not close.
            self.exposure[arb.asset] = self.exposure.get(arb.asset, 0) + residual
            if not arb.flatten:
                self._count("residual_exposure")
        self._count("flattens_done" if arb.flatten else "arbs_done")
        self.journal.write(
            "arb_done",
            arb_id=arb.arb_id,
            pair_id=arb.opp.pair_id,
            residual_atoms=residual,
            asset=arb.asset,
            hedges=len(arb.hedges),
            **({"flatten": True} if arb.flatten else {}),
        )

    def flatten(
        self, arb_id: str, candidates: Sequence[tuple[Instrument, ExecutionPolicy]]
    ) -> Arb | None:
        """One IOC order taking the portfolio's holding of the candidates' base asset
        towards zero (the kill switch's FLATTEN level), on the candidate whose LIVE book
        pays best, within its policy's max slippage; None when there is nothing to do (no
        holding, only dust below a lot, an arb still open on the asset, no book) or the
        risk gates refuse it (journaled). Its fills are meant to stay: it settles without a
        hedge, and the caller sends the next one while a holding is left."""
        if not candidates:
            return None
        asset = candidates[0][0].base
        if any(inst.base != asset for inst, _ in candidates):
            raise ValueError(f"flatten: candidates of more than one asset ({asset})")
        if any(a.asset == asset for a in self._open.values()):
            return None  # its legs and hedges settle first: the holding is not final
        held = self.portfolio.inventory(asset)
        if not held:
            return None
        side = Side.SELL if held > 0 else Side.BUY
        best: tuple[Decimal, Instrument, ExecutionPolicy, int] | None = None
        for inst, policy in candidates:
            book = self.books(inst)
            top = None if book is None else book.best_bid() if held > 0 else book.best_ask()
            if top is None:
                continue
            price = Decimal(inst.price.format(top[0]))
            if best is None or (price > best[0] if held > 0 else price < best[0]):
                best = (price, inst, policy, top[0])
        if best is None:
            return None
        _, inst, policy, top_units = best
        size = abs(held) // self.scale(inst).base_per_size
        size -= size % inst.lot
        if size <= 0 or size < inst.min_size:
            return None  # dust below the lot: stays
        price_units = _slipped(top_units, side, policy.max_slippage_bps, inst)
        opp = Opportunity(arb_id, "flatten", inst, inst, 0, 0, 0, 0, 0, 1, 0)
        arb = Arb(opp, policy, [], asset=asset, flatten=True)
        order = Order(
            f"{arb_id}-F",
            arb_id,
            inst,
            side,
            price_units,
            size,
            TimeInForce.IOC,
            Purpose.FLATTEN,
        )
        if self.risk is not None:
            verdict = self.risk.check_hedge(order)
            if verdict:
                self.journal.write(
                    "flatten_blocked", arb_id=arb_id, asset=asset, reason=verdict.name
                )
                return None
        fee_bps = self._hand_off(order)
        self.arbs[arb_id] = self._open[arb_id] = arb
        self._add_hedge(arb, order, fee_bps)
        self._count("flattens")
        self.journal.write(
            "arb",
            arb_id=arb_id,
            pair_id=opp.pair_id,
            buy=inst.name,
            sell=inst.name,
            edge_bps="0",
            size=0,
            recv_ns=0,
            applied_ns=0,
            found_ns=0,
            risk_ns=0,
            sent_ns=[order.sent_ns],
            flatten=True,
        )
        self._journal_order(order)
        self._watch(policy, order)
        return arb

    def open_arbs(self) -> int:
        return len(self._open)

    # -- recovery ---------------------------------------------------------------------------

    def open_state(self) -> list[dict[str, Any]]:
        """The open arbs and their orders as checkpoint data (see ``recovery``)."""
        rows = []
        for arb in self._open.values():
            rows.append(
                {
                    "arb_id": arb.arb_id,
                    "pair_id": arb.opp.pair_id,
                    "buy": arb.opp.buy.name,
                    "sell": arb.opp.sell.name,
                    "edge_bps": str(arb.opp.edge_bps),
                    "hedging": arb.state == ArbState.HEDGING,
                    "flatten": arb.flatten,
                    "orders": [
                        order_state(o, self.fee_bps[o.venue]) for o in arb.legs + arb.hedges
                    ],
                }
            )
        return rows

    def adopt(self, arb: RecoveredArb, policy: ExecutionPolicy) -> Arb:
        """Take over an arb a previous process left open (``recovery.recover``).

        Its unfinished orders become UNKNOWN and their venues are asked for them by client
        id: they may have filled while we were down, so they are never assumed rejected.
        An arb whose orders are all final settles now (hedging any residual, with a fresh
        deadline: the old one was measured on another process's clock)."""
        legs = arb.legs
        buy = next((o for o in legs if o.side == Side.BUY), None)
        sell = next((o for o in legs if o.side == Side.SELL), None)
        edge_num, edge_den = edge_ratio(arb.edge_bps)
        opp = Opportunity(
            arb_id=arb.arb_id,
            pair_id=arb.pair_id,
            buy=arb.buy,
            sell=arb.sell,
            buy_price=buy.price if buy else 0,
            buy_size=buy.size if buy else 0,
            sell_price=sell.price if sell else 0,
            sell_size=sell.size if sell else 0,
            edge_num=edge_num,
            edge_den=edge_den,
            recv_ns=0,
        )
        live = Arb(
            opp, policy, list(legs), list(arb.hedges), asset=arb.buy.base, flatten=arb.flatten
        )
        if arb.hedging:
            live.state = ArbState.HEDGING
            live.deadline_ns = self.clock() + int(policy.leg_deadline_s * 1e9)
        self.arbs[arb.arb_id] = self._open[arb.arb_id] = live
        for order in live.legs + live.hedges:
            self.orders[order.client_id] = (order, live)
            if order.status.done:
                continue
            self._mark_unknown(order, recovered=True)
            self._start_resolving(order)
        self._progress(live)
        return live

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every arb has settled (for shutdown and tests)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.open_arbs():
            if loop.time() > end:
                raise TimeoutError(f"{self.open_arbs()} arbs still open after {timeout_s} s")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _slipped(price: int, side: Side, bps: Decimal, inst: Instrument) -> int:
    """``price`` moved against us by at most ``bps``, on the tick grid (price units)."""
    num, den = bps.as_integer_ratio()
    move = price * num // (den * 10_000)
    return price + move if side == Side.BUY else max(1, price - move)
