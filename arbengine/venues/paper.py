"""The paper gateway: one venue's order entry, filled against that venue's live book.

``PaperGateway`` implements ``orders.Gateway``. An order is handed off at once (``submit``
returns the monotonic ns, never blocks, never calls back from inside ``submit``) and
"arrives" at the simulated venue ``latency_s`` later, where it is matched against the
venue's book *as it is then*:

* IOC walks the opposite side level by level up to its limit price, one ``Fill`` per level at
  that level's price; whatever is left is CANCELED (FILLED if nothing is left).
* FOK fills completely on the same walk or not at all (CANCELED, "FOK not fillable").
* Refused (REJECTED, nothing filled): a size not a positive whole number of lots or a price
  not a positive whole number of ticks, below the instrument's minimum size, below its
  minimum notional (at the limit price, as venues check a limit order), no LIVE book
  ("book not live"), or not enough balance on the venue ("insufficient balance": a BUY
  needs the notional at its limit plus the fee on it, a SELL the base; on a derivative
  either side needs just the fee, in quote, as the simulated futures venue asks).

The balance check is the venue's view: IOC and FOK orders never rest, so at the moment an
order arrives nothing else of ours is locked at the venue and the whole balance counts
(the portfolio's reservations are the *engine's* view of orders still in flight).

Paper fills do not change the real book: the engine keeps seeing the market as the venue
publishes it, and paper sizes are assumed small against its depth. Within one order,
though, successive fills walk down the levels (each level is used once).

Fees are the taker ``fee_bps`` in quote, rounded up per fill (``AtomScale.fee``).

``submit`` is only the hand-off, as writing the bytes is for a live gateway: it checks the
two caller bugs below, records the order, takes the order's one random draw and schedules
its arrival. Everything the venue does happens on arrival, on the venue's side: its own
copy of the order, the reservation, the checks, the matching.

The gateway drives the portfolio for its orders: ``reserve`` on arrival (what the venue
locks; with the engine, execution has already reserved right after the hand-off and this is
a no-op), ``on_fill`` per reported fill and ``on_done`` per reported final state, each
immediately *before* the listener hears of it, so a listener sees the portfolio already
updated. All three are idempotent in ``Portfolio``, so execution may call them too.

The caller's ``Order`` is never mutated: reports carry the status and the fills, and the
listener records them (that is the ``OrderEvents`` contract). The venue keeps its own copy
(made on arrival from the order's identity, price, size and terms), which ``query`` returns.

Fault injection, deterministic by ``seed`` (one draw per submitted order, in submit order,
while either probability is nonzero: without injection there is nothing to draw for):

* ``reject_prob``: the venue refuses the order (REJECTED, "injected reject").
* ``timeout_prob``: the order is processed normally at the venue but every report is lost:
  no ack, no fill, no done, and the portfolio is not told (its reservation stays: the engine
  will see the order as UNKNOWN). ``query`` reveals the venue's final state. With
  ``late_fill_s`` set, the fills are reported ``late_fill_s`` after arrival, marked
  ``late=True`` and applied to the portfolio then (once: a fill the engine already applied
  from ``query`` is skipped by the portfolio by its trade id).
"""

from __future__ import annotations

import asyncio
import random
from asyncio import get_running_loop
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from time import monotonic_ns

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.orders import (
    AtomScale,
    Fill,
    NoEvents,
    Order,
    OrderEvents,
    OrderStatus,
    Side,
    TimeInForce,
    atoms,
)
from arbengine.portfolio import Portfolio

__all__ = [
    "BOOK_NOT_LIVE",
    "FOK_NOT_FILLABLE",
    "INJECTED_REJECT",
    "INSUFFICIENT_BALANCE",
    "IOC_NOTHING",
    "IOC_REMAINDER",
    "PaperGateway",
    "walk",
]

BOOK_NOT_LIVE = "book not live"
FOK_NOT_FILLABLE = "FOK not fillable"
INSUFFICIENT_BALANCE = "insufficient balance"
INJECTED_REJECT = "injected reject"
IOC_REMAINDER = "IOC remainder canceled"
IOC_NOTHING = "IOC: nothing within the limit price"

_FIRST_LEVELS = 8  # levels read first; a deeper walk reads twice as many each time


def _levels(book: Book, side: Side) -> Iterator[tuple[int, int]]:
    """The side an order of ``side`` takes from, best first, read in growing chunks (a
    full-depth copy per order would cost more than the few levels a fill uses)."""
    read = book.asks if side is Side.BUY else book.bids
    n, seen = _FIRST_LEVELS, 0
    while True:
        levels = read(n)
        yield from levels[seen:]
        if len(levels) < n:
            return
        seen, n = len(levels), n * 2


def walk(book: Book, side: Side, limit: int, size: int) -> list[tuple[int, int]]:
    """(price, size) taken per level by an order of ``side`` up to ``limit`` for at most
    ``size``: asks up from the best for a BUY (price <= limit), bids down for a SELL."""
    taken: list[tuple[int, int]] = []
    left = size
    for price, level_size in _levels(book, side):
        if left <= 0 or (price > limit if side is Side.BUY else price < limit):
            break
        take = min(level_size, left)
        taken.append((price, take))
        left -= take
    return taken


class PaperGateway:
    """Order entry for ``venue`` against its live books; see the module docstring.

    ``books(symbol)`` returns the venue's book for the symbol if it is LIVE, else None.
    """

    def __init__(
        self,
        venue: str,
        books: Callable[[str], Book | None],
        portfolio: Portfolio,
        *,
        fee_bps: Decimal,
        latency_s: float = 0.0,
        reject_prob: float = 0.0,
        timeout_prob: float = 0.0,
        late_fill_s: float | None = None,
        seed: int = 0,
        keep_orders: int = 100_000,
    ) -> None:
        fee = Decimal(fee_bps)
        if not fee.is_finite() or fee < 0:
            raise ValueError(f"fee_bps must be a finite non-negative Decimal, got {fee_bps}")
        if keep_orders < 1:
            raise ValueError(f"keep_orders must be >= 1, got {keep_orders}")
        if latency_s < 0 or (late_fill_s is not None and late_fill_s < 0):
            raise ValueError("latency_s and late_fill_s must be >= 0")
        if not (0 <= reject_prob <= 1 and 0 <= timeout_prob <= 1) or (
            reject_prob + timeout_prob > 1
        ):
            raise ValueError("reject_prob and timeout_prob must be in [0, 1] with sum <= 1")
        self.venue = venue
        self.fee_bps = fee
        self.latency_s = latency_s
        self.reject_prob = reject_prob
        self.timeout_prob = timeout_prob
        self.late_fill_s = late_fill_s
        self._books = books
        self._portfolio = portfolio
        self._rng = random.Random(seed)
        self._events: OrderEvents = NoEvents()
        # client id -> the caller's order / the venue's copy once arrived. Both keep the most
        # recent ``keep_orders`` (insertion order is submission order): a venue answers
        # queries about recent orders, and a demo daemon runs for weeks.
        self._submitted: dict[str, Order] = {}
        self._venue_orders: dict[str, Order] = {}
        self.keep_orders = keep_orders
        # What is scheduled and not yet run: arrivals by client id, later work (late fills,
        # an arrival's rest after an early timer) by a sequence number. Keyed, rather than a
        # closure per call that removes its own handle.
        self._arrivals: dict[str, asyncio.Handle] = {}
        self._timers: dict[int, asyncio.Handle] = {}
        self._next_timer = 0
        self._next_id = 0
        self._next_trade = 0
        self._rules: dict[str, tuple[AtomScale, int]] = {}  # name -> (scale, min notional)

    def set_listener(self, events: OrderEvents) -> None:
        self._events = events

    # --- order entry ------------------------------------------------------------------------

    def submit(self, order: Order) -> int:
        """Hand ``order`` off; it arrives at the venue ``latency_s`` later.

        Raises ValueError only for caller bugs that a venue could not even attribute: an
        order for another venue, or a client id already used on this gateway.
        """
        client_id = order.client_id
        if order.instrument.venue != self.venue:
            raise ValueError(f"{client_id}: order for {order.venue} sent to {self.venue}")
        submitted = self._submitted
        if client_id in submitted:
            raise ValueError(f"{client_id}: client id already used on {self.venue}")
        loop = get_running_loop()  # before anything changes: outside a loop nothing is sent
        # One draw per order: outcomes depend on seed and order only. None to take without
        # injection (1.0 is every order's fate then); the cold draw cost ~2.7 us per arb.
        draw = self._rng.random() if self.reject_prob or self.timeout_prob else 1.0
        submitted[client_id] = order
        if len(submitted) > self.keep_orders:
            oldest = next(iter(submitted))
            del submitted[oldest]
            self._venue_orders.pop(oldest, None)
        sent_ns = monotonic_ns()
        latency_s = self.latency_s
        self._arrivals[client_id] = (
            loop.call_later(latency_s, self._arrive, order, sent_ns, draw)
            if latency_s
            else loop.call_soon(self._arrive, order, sent_ns, draw)
        )
        return sent_ns

    async def query(self, client_id: str) -> Order | None:
        """The venue's copy of the order (after one latency, like a request), or None if the
        venue never saw it (not submitted, or still on its way)."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        found = self._venue_orders.get(client_id)
        return None if found is None else replace(found, fills=list(found.fills))

    def close(self) -> None:
        """Cancel everything still scheduled (orders on their way, late fills)."""
        for handle in (*self._arrivals.values(), *self._timers.values()):
            handle.cancel()
        self._arrivals.clear()
        self._timers.clear()

    @property
    def pending(self) -> int:
        """Scheduled arrivals and late fills not yet run."""
        return len(self._arrivals) + len(self._timers)

    # --- the venue --------------------------------------------------------------------------

    def _later(self, delay_s: float, fn: Callable[..., None], *args: object) -> None:
        self._next_timer += 1
        key = self._next_timer
        self._timers[key] = get_running_loop().call_later(delay_s, self._fire, key, fn, args)

    def _fire(self, key: int, fn: Callable[..., None], args: tuple[object, ...]) -> None:
        del self._timers[key]
        fn(*args)

    def _arrive(self, order: Order, sent_ns: int, draw: float) -> None:
        self._arrivals.pop(order.client_id, None)
        now = monotonic_ns()
        due_ns = sent_ns + round(self.latency_s * 1e9)
        if now < due_ns:
            # Loop timers may fire a little early (uvloop counts whole milliseconds from a
            # cached loop time); the latency is a promise, so wait out the rest.
            self._later((due_ns - now) / 1e9, self._arrive, order, sent_ns, draw)
            return
        fate = (
            INJECTED_REJECT
            if draw < self.reject_prob
            else "timeout"
            if draw < self.reject_prob + self.timeout_prob
            else ""
        )
        # What the venue locks for the order; a no-op when execution reserved it already.
        self._portfolio.reserve(order, self.fee_bps)
        venue_copy = Order(
            order.client_id,
            order.arb_id,
            order.instrument,
            order.side,
            order.price,
            order.size,
            order.tif,
            order.purpose,
            OrderStatus.SENT,
            created_ns=order.created_ns,
            sent_ns=sent_ns,
        )
        self._next_id += 1
        venue_copy.venue_order_id = f"paper-{self.venue}-{self._next_id}"
        self._venue_orders[order.client_id] = venue_copy
        reason = fate if fate == INJECTED_REJECT else self._refusal(venue_copy)
        fills: list[Fill] = []
        if reason:
            status = OrderStatus.REJECTED
        else:
            status, reason, fills = self._match(venue_copy, now)
            venue_copy.status = OrderStatus.ACKED
            venue_copy.acked_ns = now
        for fill in fills:
            venue_copy.record(fill)
        venue_copy.status = status
        venue_copy.reason = reason
        venue_copy.done_ns = now

        if fate == "timeout":
            if self.late_fill_s is not None and fills:
                self._later(self.late_fill_s, self._late_fills, order, fills)
            return
        if status is not OrderStatus.REJECTED:
            self._events.on_ack(order, now)
        for fill in fills:
            self._portfolio.on_fill(order, fill)
            self._events.on_fill(order, fill)
        self._portfolio.on_done(order, status)
        self._events.on_done(order, status, reason, now)

    def _late_fills(self, order: Order, fills: list[Fill]) -> None:
        now = monotonic_ns()
        for fill in fills:
            late = replace(fill, ts_ns=now, late=True)
            self._portfolio.on_fill(order, late)
            self._events.on_fill(order, late)

    def _rules_of(self, inst: Instrument) -> tuple[AtomScale, int]:
        rules = self._rules.get(inst.name)
        if rules is None:
            rules = self._rules[inst.name] = (AtomScale.of(inst), atoms(inst.min_notional))
        return rules

    def _refusal(self, order: Order) -> str:
        """Why the venue refuses ``order`` before matching, or "" if it takes it."""
        inst = order.instrument
        scale, min_notional = self._rules_of(inst)
        price, size = order.price, order.size
        if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
            return f"price {price!r} is not a positive whole number of ticks ({inst.price.step})"
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            return f"size {size!r} is not a positive whole number of size units"
        if size % inst.lot:
            return (
                f"size {inst.size.format(size, True)} is not a multiple of the lot "
                f"{inst.size.format(inst.lot, True)}"
            )
        if size < inst.min_size:
            return (
                f"size {inst.size.format(size, True)} below min size "
                f"{inst.size.format(inst.min_size, True)}"
            )
        if scale.notional(price, size) < min_notional:
            return (
                f"notional {inst.price.format(price, True)} x {inst.size.format(size, True)} "
                f"below min notional {inst.min_notional}"
            )
        if self._books(inst.symbol) is None:
            return BOOK_NOT_LIVE
        if inst.derivative:  # a contract: the fee in quote either side (see ``portfolio``)
            asset = inst.quote
            need = scale.fee(price, size, self.fee_bps)
        elif Side(order.side) is Side.BUY:
            asset = inst.quote
            need = scale.notional(price, size) + scale.fee(price, size, self.fee_bps)
        else:
            asset = inst.base
            need = scale.base(size)
        if self._portfolio.balance(self.venue, asset) < need:
            return INSUFFICIENT_BALANCE
        return ""

    def _match(self, order: Order, now: int) -> tuple[OrderStatus, str, list[Fill]]:
        inst = order.instrument
        book = self._books(inst.symbol)
        assert book is not None  # checked by _refusal in the same callback
        scale, _ = self._rules_of(inst)
        taken = walk(book, Side(order.side), order.price, order.size)
        filled = sum(size for _, size in taken)
        if order.tif is TimeInForce.FOK and filled < order.size:
            return OrderStatus.CANCELED, FOK_NOT_FILLABLE, []
        fills = []
        for price, size in taken:
            self._next_trade += 1
            fills.append(
                Fill(
                    client_id=order.client_id,
                    price=price,
                    size=size,
                    fee=scale.fee(price, size, self.fee_bps),
                    fee_asset=inst.quote,
                    ts_ns=now,
                    trade_id=f"paper-{self.venue}-t{self._next_trade}",
                )
            )
        if filled == order.size:
            return OrderStatus.FILLED, "", fills
        return OrderStatus.CANCELED, IOC_REMAINDER if fills else IOC_NOTHING, fills
