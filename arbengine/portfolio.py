"""Balances, reservations, inventory, exposure and PnL, exact in atoms (see ``orders``).

One ``Portfolio`` holds every venue's account. It knows what it has been told: reservations
(``reserve``), fills (``on_fill``) and final states (``on_done``). The execution layer tells
it about every order (reserving right after the hand-off to the gateway, before any report
can come back); in paper mode the paper gateway does too (reserving when the order reaches
the simulated venue). All three calls are idempotent (a reservation per client id, a fill per
``(client_id, trade_id)``, a release per order), so the two paths, or a journal replay after
``restore``, never count anything twice.

The figures the risk gates read on every arb (available per account, inventory and in-flight
base per asset, open orders per venue and in total) are kept in ``ledger``, cells the
compiled gates read as C fields (``_core/ledger.pxd``): every change below updates them in
the same call. The ledger is their only store and the methods here read it too, except
``open_orders_total``, which counts the reservations (the ledger's total is kept equal).

Definitions, all in atoms (ints):

* ``balance(venue, asset)``: what the account holds. ``available`` subtracts the
  reservations of in-flight orders on that venue.
* A reservation is made per order as it is sent: a BUY reserves quote = notional of the
  unfilled size at the limit price plus the fee on it at the reserved rate (rounded up, as
  ``AtomScale.fee``); a SELL reserves base = the unfilled size (contracts: times the
  multiplier). Each fill shrinks it to the amount for what is still unfilled; ``on_done``
  with a final status releases the rest. An UNKNOWN order is not done: its reservation
  stays until the venue confirms a final state, because it may still fill.
* A derivative (``Instrument.derivative``: a futures contract in one-way position mode) is
  booked as its venue books it. Its base balance on the venue is the signed position in
  base atoms (a sell from flat goes negative: a short); its quote balance is the venue's
  wallet, which a fill moves by that contract's realized PnL and the fee, never by the
  notional. Realized PnL per contract is average cost: a reducing fill closes
  ``entry x closed / |position|`` (truncated toward zero) of the contract's entry value
  (``contract``; signed like the position). ``equity`` values the open contracts at
  ``position x mark - entry``. An order on a contract, either side, reserves only the fee
  on its unfilled notional, in quote: the venue needs margin, not the asset, and margin is
  the venue's to judge (its refusal is a reject); the inventory and exposure limits bound
  the position.
* ``inventory(asset)``: net change of the asset summed over all venues since the start,
  from trading only (fills and fees; ``deposit`` moves the starting line instead). So
  ``sum over venues of balance == starting balances + inventory`` at all times. (On a
  derivative's venue the quote moves by realized PnL and fees, as said above.)
* Idempotence costs memory: the applied (client id, trade id) pairs and the finished client
  ids are kept, and snapshotted, for the ``keep_done`` most recently finished orders (and
  every open one). A daemon runs for weeks and every checkpoint carries them, so older ones
  are forgotten: a repeated report can only come while something still knows the order (the
  executor keeps its last ``keep_settled`` arbs, the gateways their last ``keep_done``
  orders), and a replay starts at the newest checkpoint. Fills without a trade id cannot be
  recognised and always apply.
* ``net_exposure(asset)``: the unhedged amount the risk gates limit. For an arb book that
  starts hedged it equals ``inventory(asset)``: filled buys minus filled sells of the asset on
  every venue, minus fees charged in it. It counts fills only, never what in-flight orders
  may still add; ``in_flight(asset)`` gives that worst case separately (unfilled BUY and SELL
  base of open orders, including UNKNOWN ones).
* Realized PnL uses average cost per base asset, across venues and quote currencies, with
  signed positions (a sell from flat opens a short). A fill that reduces the position
  realizes ``proceeds - cost basis of the closed part`` in the quote assets involved (a
  cross-quote arb realizes +USD and -USDT, valued with marks when asked). Fees are expensed
  as negative realized PnL in their asset when paid. Partial closes split the basis
  proportionally (truncated to the atom); a flat position has zero basis, so over a round
  trip the realized PnL is exactly the quote it moved.
* Valuation (``equity``, ``realized_pnl_today``, ...): per asset ``atoms * mark``, marks being
  prices in the reference currency; rounded down (against us), except ``exposure_value``
  which rounds up (also against us: it feeds a limit). The reference asset's mark defaults to
  1; any other asset with a non-zero amount must have a mark (``KeyError`` otherwise: a
  silent zero would hide a loss).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, NamedTuple

from arbengine._core.instrument import Instrument
from arbengine._core.ledger import Account, AssetLine, Ledger, VenueLine
from arbengine.orders import AtomScale, Fill, Order, OrderStatus, Side

__all__ = ["KEEP_DONE", "NS_PER_DAY", "SNAPSHOT_VERSION", "Marks", "Portfolio", "Reservation"]

NS_PER_DAY = 86_400 * 10**9
_INT_TEXT = re.compile(r"-?[0-9]+")
SNAPSHOT_VERSION = 1
# Finished orders whose fills and release are remembered: two per arb for the executor's
# 10,000 settled arbs it keeps (``Executor.keep_settled``), and its hedges besides.
KEEP_DONE = 50_000

Marks = Mapping[str, Decimal | int]
Key = tuple[str, str]  # (venue, asset)


def _muldiv(value: int, num: int, den: int) -> int:
    """value * num / den truncated toward zero (den > 0, num >= 0): the proportional split
    of a signed basis never overshoots the whole."""
    q = abs(value) * num // den
    return q if value >= 0 else -q


def _ratio(mark: Decimal | int, asset: str) -> tuple[int, int]:
    if isinstance(mark, bool) or not isinstance(mark, (int, Decimal)):
        raise TypeError(f"mark for {asset} must be Decimal or int, not {type(mark).__name__}")
    value = Decimal(mark)
    if not value.is_finite() or value < 0:
        raise ValueError(f"mark for {asset} must be a finite non-negative number, got {mark}")
    return value.as_integer_ratio()


@dataclass(slots=True)
class Reservation:
    """What one in-flight order holds back on its venue."""

    client_id: str
    venue: str
    side: Side
    base: str
    quote: str
    price: int  # limit, price units
    size: int  # size units
    filled: int  # size units, as seen by the portfolio (its own count, not order.filled)
    scale: AtomScale
    fee_bps: Decimal
    # fee_bps as an exact fraction of the notional (fee_den includes the 10_000 of a bp):
    # worked out once per rate, not per reservation or per fill.
    fee_num: int
    fee_den: int
    derivative: bool = False  # holds the fee only, in quote, either side
    amount: int = 0  # atoms of ``asset`` held now
    left: int = 0  # base atoms still to fill, as counted in the portfolio's ``in_flight``
    # Its cells in the portfolio's ledger, attached when it is counted (``Portfolio._add``):
    # ``amount`` is held on ``account``, ``left`` counted on ``line``, the order on
    # ``venue_line``. Found once, not per fill.
    account: Account = field(init=False, repr=False, compare=False)
    line: AssetLine = field(init=False, repr=False, compare=False)
    venue_line: VenueLine = field(init=False, repr=False, compare=False)

    @property
    def asset(self) -> str:
        return self.quote if self.side is Side.BUY or self.derivative else self.base

    def needed(self) -> int:
        remaining = self.size - self.filled
        if remaining <= 0:
            return 0
        if self.derivative:
            notional = self.price * remaining * self.scale.quote_per_price_size
            return -((-notional * self.fee_num) // self.fee_den)
        if self.side is Side.BUY:
            # As AtomScale.notional + AtomScale.fee (fee rounded up), from the cached ratio.
            notional = self.price * remaining * self.scale.quote_per_price_size
            return notional - (-notional * self.fee_num) // self.fee_den
        return remaining * self.scale.base_per_size

    def holds(self) -> tuple[int, int]:
        """(``needed()``, base atoms still to fill) in whole atoms, as the ledger takes them.

        An order off the grid (a price or size that is not an int) never reaches a real
        venue, but the paper venue reserves an order on arrival before it judges it and
        rejects it; such an order holds its amounts rounded up (against us) until then."""
        amount = self.needed()
        left = max(self.size - self.filled, 0) * self.scale.base_per_size
        if type(amount) is not int or type(left) is not int:
            amount, left = math.ceil(amount), math.ceil(left)
        return amount, left


class Portfolio:
    """Every venue's balances, the in-flight reservations, inventory and PnL.

    ``balances`` are the starting balances in atoms per (venue, asset). ``reference`` is the
    currency equity and PnL are valued in. ``clock`` returns UTC epoch nanoseconds; it decides
    which UTC day a fill's realized PnL belongs to (inject a fake one in tests and replays).
    ``keep_done`` finished orders are remembered for idempotence (see the module's notes).
    """

    def __init__(
        self,
        balances: Mapping[Key, int] | None = None,
        *,
        reference: str = "USDT",
        clock: Callable[[], int] = time.time_ns,
        keep_done: int = KEEP_DONE,
    ) -> None:
        if type(keep_done) is not int or keep_done < 1:
            raise ValueError(f"keep_done must be an int >= 1, got {keep_done!r}")
        self.reference = reference
        self.keep_done = keep_done
        self._clock = clock
        self._balances: dict[Key, int] = {}
        self._start: dict[Key, int] = {}  # starting line per (venue, asset), moved by deposit
        self._reservations: dict[str, Reservation] = {}
        self._fees: dict[str, int] = {}
        self._position: dict[str, int] = {}  # base atoms, signed, per base asset
        self._basis: dict[str, dict[str, int]] = {}  # base -> quote -> atoms (sign of position)
        self._realized: dict[str, int] = {}  # asset -> atoms, since start
        self._realized_today: dict[str, int] = {}
        self._day = clock() // NS_PER_DAY
        self._bases: set[str] = set()  # assets seen as an instrument's base
        self._contracts: dict[Key, _Contract] = {}  # per derivative (venue, symbol)
        self._applied: dict[str, set[str]] = {}  # client id -> trade ids of its applied fills
        # Client ids of finished orders, oldest first (an ordered set): those whose
        # reservation was released, and those a fill came for with none held (late reports).
        self._done: dict[str, None] = {}
        self._peak: int | None = None
        # Available (balance minus reservations), inventory, in-flight base and open-order
        # counts: their only store, kept exact by every change. The risk gates hold
        # references to its cells, so it is never replaced (``restore`` fills a new one).
        self.ledger: Final[Ledger] = Ledger()
        # Per instrument (by identity: the engine passes the same objects every time) and per
        # fee rate, what every reservation and fill would otherwise recompute.
        self._instruments: dict[Instrument, _InstrumentInfo] = {}
        self._fee_ratios: dict[Decimal, tuple[int, int]] = {}
        for (venue, asset), amount in (balances or {}).items():
            self.deposit(venue, asset, amount)

    # --- balances ---------------------------------------------------------------------------

    def deposit(self, venue: str, asset: str, amount: int) -> None:
        """Funds moved in (or out, negative) from outside trading: the balance and the
        starting line move together, so inventory is unchanged."""
        _check_int(amount, "amount")
        account = self.ledger.account(venue, asset)
        key = account.key
        self._balances[key] = self._balances.get(key, 0) + amount
        self._start[key] = self._start.get(key, 0) + amount
        account.available += amount

    def balance(self, venue: str, asset: str) -> int:
        return self._balances.get((venue, asset), 0)

    def reserved(self, venue: str, asset: str) -> int:
        # The ledger keeps what is available; the reservations are what it lacks of the
        # balance.
        return self._balances.get((venue, asset), 0) - self.ledger.account(venue, asset).available

    def available(self, venue: str, asset: str) -> int:
        """Balance minus the reservations of in-flight orders (may be negative if orders
        were reserved beyond the balance: the risk gates are what prevents that)."""
        return self.ledger.account(venue, asset).available

    def balances(self) -> dict[Key, int]:
        return dict(self._balances)

    def starting_balance(self, venue: str, asset: str) -> int:
        return self._start.get((venue, asset), 0)

    # --- reservations and open orders -------------------------------------------------------

    def reserve(self, order: Order, fee_bps: Decimal) -> None:
        """Hold back what ``order`` may spend. No change if it already has a reservation or
        was already done, so execution and the gateway may both call it and a journal
        replayed over a restored snapshot cannot resurrect a finished order."""
        client_id = order.client_id
        if client_id in self._reservations or client_id in self._done:
            return
        info = self._instruments.get(order.instrument)
        if info is None:
            info = self._instrument(order.instrument)
        if type(fee_bps) is not Decimal:
            fee_bps = Decimal(fee_bps)
        ratio = self._fee_ratios.get(fee_bps)
        if ratio is None:
            ratio = self._fee_ratio(fee_bps)
        side = order.side
        if type(side) is not Side:
            side = Side(side)
        res = Reservation(
            client_id,
            info.venue,
            side,
            info.base,
            info.quote,
            order.price,
            order.size,
            order.filled,
            info.scale,
            fee_bps,
            ratio[0],
            ratio[1],
            info.derivative,
        )
        self._add(
            res,
            info.quote_account if side is Side.BUY or info.derivative else info.base_account,
            info.base_line,
            info.venue_line,
        )
        self._reservations[client_id] = res

    def reservation(self, client_id: str) -> Reservation | None:
        return self._reservations.get(client_id)

    def on_done(self, order: Order, status: OrderStatus | None = None) -> None:
        """Release what is left of ``order``'s reservation once its state is final.

        ``status`` defaults to ``order.status`` (a gateway reports the status before the
        listener writes it into the order). A status that is not final (UNKNOWN, ACKED, ...)
        keeps the reservation: an order without an answer may still fill. Releasing twice is
        a no-op.
        """
        final = status if status is not None else order.status
        if type(final) is not OrderStatus:
            final = OrderStatus(final)
        if not final.done:
            return
        res = self._reservations.pop(order.client_id, None)
        if res is not None:
            self._set(res, 0, 0)
            res.venue_line.open_orders -= 1
            self.ledger.open_total -= 1
            self._finished(order.client_id)

    def is_done(self, client_id: str) -> bool:
        """Whether ``client_id`` is one of the last ``keep_done`` finished orders: its
        reservation released by a final state, or a fill reported for it with none held."""
        return client_id in self._done

    def _finished(self, client_id: str) -> None:
        """Remember ``client_id`` as the newest finished order; past ``keep_done``, forget
        the oldest one and its applied fills."""
        done = self._done
        done.pop(client_id, None)
        done[client_id] = None
        while len(done) > self.keep_done:
            old = next(iter(done))
            del done[old]
            self._applied.pop(old, None)

    def open_orders(self, venue: str) -> int:
        """Orders on ``venue`` holding a reservation: in flight, acked or UNKNOWN."""
        return self.ledger.venue(venue).open_orders

    def open_orders_total(self) -> int:
        # Counted from the reservations themselves, not read from ``ledger.open_total``
        # (kept equal): a second, independent answer the tests hold the ledger to.
        return len(self._reservations)

    def in_flight(self, asset: str) -> tuple[int, int]:
        """(base atoms open BUYs may still add, base atoms open SELLs may still remove) for a
        base asset: the worst case on top of ``net_exposure``."""
        line = self.ledger.asset(asset)
        return line.open_buy, line.open_sell

    # --- fills ------------------------------------------------------------------------------

    def on_fill(self, order: Order, fill: Fill) -> None:
        """Apply one fill (see ``apply_fill``), as an ``OrderEvents``-shaped call."""
        self.apply_fill(order, fill)

    def apply_fill(self, order: Order, fill: Fill) -> dict[str, int] | None:
        """Apply one fill: balances, fees, inventory, position, realized PnL, reservation.

        Returns this fill's realized PnL per asset (fees included, negative), or None if the
        fill was applied before (same client id and non-empty trade id): a late fill that
        was already learnt through ``query``, or a journal replay after ``restore``.
        """
        if fill.size <= 0 or fill.fee < 0:
            raise ValueError(f"{order.client_id}: bad fill size {fill.size} / fee {fill.fee}")
        if fill.trade_id:
            client_id = order.client_id
            trades = self._applied.get(client_id)
            if trades is None:
                trades = self._applied[client_id] = set()
            elif fill.trade_id in trades:
                return None
            trades.add(fill.trade_id)
            if client_id not in self._reservations:
                # A late report (the order is final): remembered among the finished, so it
                # is forgotten with them rather than kept for good.
                self._finished(client_id)
        info = self._instruments.get(order.instrument)
        if info is None:
            info = self._instrument(order.instrument)
        scale, base, quote, venue = info.scale, info.base, info.quote, info.venue
        side = order.side if type(order.side) is Side else Side(order.side)
        base_qty = side * scale.base(fill.size)  # signed: + bought
        value = side * scale.notional(fill.price, fill.size)  # signed like base_qty
        fee_asset = fill.fee_asset or quote

        self._move(info.base_account, info.base_line, base_qty)
        if info.derivative:
            cash = self._contract_fill(order.instrument, quote, base_qty, value)
            if cash:
                self._move(info.quote_account, info.quote_line, cash)
        else:
            self._move(info.quote_account, info.quote_line, -value)
        if fill.fee:
            ledger = self.ledger
            self._move(ledger.account(venue, fee_asset), ledger.asset(fee_asset), -fill.fee)
            self._fees[fee_asset] = self._fees.get(fee_asset, 0) + fill.fee

        realized = self._trade(base, quote, base_qty, value)
        if fill.fee:
            realized[fee_asset] = realized.get(fee_asset, 0) - fill.fee
        self._roll_day()
        for asset, amount in realized.items():
            self._realized[asset] = self._realized.get(asset, 0) + amount
            self._realized_today[asset] = self._realized_today.get(asset, 0) + amount

        res = self._reservations.get(order.client_id)
        if res is not None:
            res.filled += fill.size
            self._set(res, *res.holds())
        return realized

    def _contract_fill(self, inst: Instrument, quote: str, qty: int, value: int) -> int:
        """A derivative's fill of ``qty`` base atoms worth ``value`` (both signed, + bought):
        its position and entry move; returns the realized PnL its venue books (quote atoms,
        before the fee). Same average cost as ``_trade``, per contract."""
        key = (inst.venue, inst.symbol)
        contract = self._contracts.get(key)
        if contract is None:
            contract = self._contracts[key] = _Contract(quote)
        position, entry = contract.position, contract.entry
        if position == 0 or (position > 0) == (qty > 0):
            contract.position, contract.entry = position + qty, entry + value
            return 0
        close = min(abs(qty), abs(position))
        value_close = value if close == abs(qty) else _muldiv(value, close, abs(qty))
        part = entry if close == abs(position) else _muldiv(entry, close, abs(position))
        # The rest of a flipping fill opens the other way at its own price.
        contract.position, contract.entry = position + qty, entry - part + value - value_close
        return -(value_close + part)

    def contract(self, venue: str, symbol: str) -> tuple[int, int]:
        """A derivative's (position in base atoms, entry value in quote atoms), signed."""
        contract = self._contracts.get((venue, symbol))
        return (0, 0) if contract is None else (contract.position, contract.entry)

    def contracts(self) -> dict[Key, tuple[int, int]]:
        """Every derivative traded: (venue, symbol) -> (position, entry), as ``contract``."""
        return {key: (c.position, c.entry) for key, c in self._contracts.items()}

    def set_contract(self, inst: Instrument, position: int, entry: int) -> None:
        """Take a derivative's position and entry value as its venue reports them (startup
        reconciliation): the base balance moves to it by a ``deposit`` (inventory
        unchanged), the entry is the venue's."""
        _check_int(position, "position")
        _check_int(entry, "entry")
        if not inst.derivative:
            raise ValueError(f"{inst.name} is not a derivative")
        key = (inst.venue, inst.symbol)
        old = self.contract(*key)[0]
        if inst not in self._instruments:
            self._instrument(inst)  # its base counts as a base from now on
        self._contracts[key] = _Contract(inst.quote, position, entry)
        if position != old:
            self.deposit(inst.venue, inst.base, position - old)

    def _trade(self, base: str, quote: str, qty: int, value: int) -> dict[str, int]:
        """Average-cost position update; returns realized PnL per asset (before fees).

        ``basis`` carries the sign of the position (long: cost paid; short: proceeds
        received). Realized on a reducing fill = -(value of the closing part + basis of the
        closed part), e.g. long 1 @ 100 sold @ 101: -(-101 + 100) = +1.
        """
        position = self._position.get(base, 0)
        basis = self._basis.setdefault(base, {})
        realized: dict[str, int] = {}
        if position == 0 or (position > 0) == (qty > 0):
            basis[quote] = basis.get(quote, 0) + value
        else:
            close = min(abs(qty), abs(position))
            value_close = value if close == abs(qty) else _muldiv(value, close, abs(qty))
            realized[quote] = -value_close
            for q, b in list(basis.items()):
                part = b if close == abs(position) else _muldiv(b, close, abs(position))
                basis[q] = b - part
                realized[q] = realized.get(q, 0) - part
            if abs(qty) > close:  # flipped: the rest of the fill opens the other way
                basis[quote] = basis.get(quote, 0) + value - value_close
        self._position[base] = position + qty
        for q in [q for q, b in basis.items() if b == 0]:
            del basis[q]
        if not basis:
            del self._basis[base]
        return {a: v for a, v in realized.items() if v}

    # --- inventory and exposure -------------------------------------------------------------

    def inventory(self, asset: str) -> int:
        return self.ledger.asset(asset).inventory

    def net_exposure(self, asset: str) -> int:
        """Unhedged amount of ``asset`` from fills: == ``inventory(asset)`` (see the module
        docstring); in-flight orders excluded (``in_flight``)."""
        return self.ledger.asset(asset).inventory

    def exposure_value(self, marks: Marks) -> int:
        """Gross value of every base asset's net exposure, sum of |exposure| x mark, in
        reference atoms, rounded up."""
        total = 0
        for asset in sorted(self._bases):
            amount = abs(self.ledger.asset(asset).inventory)
            if amount:
                num, den = self._mark(marks, asset)
                total += -((-amount * num) // den)
        return total

    def position(self, base: str) -> int:
        """Signed base atoms of the PnL position (fills only; fees in base are expensed)."""
        return self._position.get(base, 0)

    def cost_basis(self, base: str) -> dict[str, int]:
        """Open position's basis per quote asset (signed like the position)."""
        return dict(self._basis.get(base, {}))

    def bases(self) -> frozenset[str]:
        return frozenset(self._bases)

    # --- PnL and equity ---------------------------------------------------------------------

    def fees_paid(self, asset: str) -> int:
        return self._fees.get(asset, 0)

    def realized(self, asset: str) -> int:
        """Realized PnL since the start booked in ``asset`` (atoms, fees included)."""
        return self._realized.get(asset, 0)

    def realized_pnl(self, marks: Marks) -> int:
        return self._value(self._realized, marks)

    def realized_pnl_today(self, marks: Marks) -> int:
        """Realized PnL (fees included) of the current UTC day, in reference atoms."""
        self._roll_day()
        return self._value(self._realized_today, marks)

    def equity(self, marks: Marks) -> int:
        """Everything held on every venue, marked, in reference atoms (reservations are
        still ours). Every valuation is a sample for ``peak_equity``."""
        totals: dict[str, int] = {}
        for (_, asset), amount in self._balances.items():
            totals[asset] = totals.get(asset, 0) + amount
        # An open contract is worth position x mark (in its base's balance) less its entry.
        for c in self._contracts.values():
            totals[c.quote] = totals.get(c.quote, 0) - c.entry
        value = self._value(totals, marks)
        if self._peak is None or value > self._peak:
            self._peak = value
        return value

    @property
    def peak_equity(self) -> int | None:
        """Highest equity valued so far (None before the first valuation)."""
        return self._peak

    def drawdown(self, marks: Marks) -> int:
        """Peak equity minus current equity, >= 0."""
        value = self.equity(marks)
        assert self._peak is not None  # equity() just set it
        return self._peak - value

    # --- snapshot ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (ints and strings in lists and dicts), sorted so
        equal states give equal snapshots."""
        snap: dict[str, Any] = {
            "version": SNAPSHOT_VERSION,
            "reference": self.reference,
            "balances": _rows(self._balances),
            "start": _rows(self._start),
            "reservations": [
                {
                    "client_id": r.client_id,
                    "venue": r.venue,
                    "side": int(r.side),
                    "base": r.base,
                    "quote": r.quote,
                    "price": r.price,
                    "size": r.size,
                    "filled": r.filled,
                    "base_per_size": r.scale.base_per_size,
                    "quote_per_price_size": r.scale.quote_per_price_size,
                    "fee_bps": str(r.fee_bps),
                    **({"derivative": True} if r.derivative else {}),
                }
                for _, r in sorted(self._reservations.items())
            ],
            "inventory": _assets({a.asset: a.inventory for a in self.ledger.asset_lines()}),
            "fees": _assets(self._fees),
            "position": _assets(self._position),
            "basis": {b: _assets(q) for b, q in sorted(self._basis.items())},
            "realized": _assets(self._realized),
            "realized_today": _assets(self._realized_today),
            "day": self._day,
            "bases": sorted(self._bases),
            "contracts": [
                [v, sym, c.quote, c.position, c.entry]
                for (v, sym), c in sorted(self._contracts.items())
            ],
            "applied": [[c, t] for c in sorted(self._applied) for t in sorted(self._applied[c])],
            "done": list(self._done),  # oldest first: the order they are forgotten in
        }
        if self._peak is not None:
            snap["peak_equity"] = self._peak
        return snap

    @classmethod
    def restore(
        cls,
        snapshot: Mapping[str, Any],
        *,
        clock: Callable[[], int] = time.time_ns,
        keep_done: int = KEEP_DONE,
    ) -> Portfolio:
        """Rebuild from ``snapshot()`` output (e.g. after a crash, then replay the journal's
        later fills through ``on_fill``: those already in the snapshot are skipped)."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported portfolio snapshot version {snapshot.get('version')}")
        p = cls(reference=snapshot["reference"], clock=clock, keep_done=keep_done)
        ledger = p.ledger
        p._balances = {(v, a): _int(n) for v, a, n in snapshot["balances"]}
        for (venue, asset), amount in p._balances.items():
            ledger.account(venue, asset).available = amount  # the reservations come off below
        p._start = {(v, a): _int(n) for v, a, n in snapshot["start"]}
        for row in snapshot["reservations"]:
            fee_bps = Decimal(row["fee_bps"])
            fee_num, fee_den = p._fee_ratios.get(fee_bps) or p._fee_ratio(fee_bps)
            res = Reservation(
                client_id=row["client_id"],
                venue=row["venue"],
                side=Side(row["side"]),
                base=row["base"],
                quote=row["quote"],
                price=_int(row["price"]),
                size=_int(row["size"]),
                filled=_int(row["filled"]),
                scale=AtomScale(_int(row["base_per_size"]), _int(row["quote_per_price_size"])),
                fee_bps=fee_bps,
                fee_num=fee_num,
                fee_den=fee_den,
                derivative=bool(row.get("derivative", False)),
            )
            p._add(
                res,
                ledger.account(res.venue, res.asset),
                ledger.asset(res.base),
                ledger.venue(res.venue),
            )
            p._reservations[res.client_id] = res
        for asset, amount in _from_assets(snapshot["inventory"]).items():
            ledger.asset(asset).inventory = amount
        p._fees = _from_assets(snapshot["fees"])
        p._position = _from_assets(snapshot["position"])
        p._basis = {b: _from_assets(q) for b, q in snapshot["basis"].items()}
        p._realized = _from_assets(snapshot["realized"])
        p._realized_today = _from_assets(snapshot["realized_today"])
        p._day = _int(snapshot["day"])
        p._bases = set(snapshot["bases"])
        for venue, symbol, quote, pos, entry in snapshot.get("contracts", []):
            p._contracts[(venue, symbol)] = _Contract(quote, _int(pos), _int(entry))
        for c, t in snapshot["applied"]:
            p._applied.setdefault(c, set()).add(t)
        # Oldest first, as ``snapshot`` lists them (snapshots from before retention listed
        # them sorted, and their late reports' ids not at all: those are taken as oldest).
        # A smaller keep_done forgets the excess now.
        done = snapshot["done"]
        listed = set(done)
        stray = [c for c in p._applied if c not in p._reservations and c not in listed]
        for c in stray + list(done):
            p._finished(c)
        peak = snapshot.get("peak_equity")
        p._peak = None if peak is None else _int(peak)
        return p

    # --- internals --------------------------------------------------------------------------

    def _instrument(self, inst: Instrument) -> _InstrumentInfo:
        ledger = self.ledger
        info = _InstrumentInfo(
            inst.venue,
            inst.base,
            inst.quote,
            AtomScale.of(inst),
            ledger.account(inst.venue, inst.base),
            ledger.account(inst.venue, inst.quote),
            ledger.asset(inst.base),
            ledger.asset(inst.quote),
            ledger.venue(inst.venue),
            inst.derivative,
        )
        self._instruments[inst] = info
        # Every reservation and fill of an instrument is seen here first, so its base is
        # recorded once here rather than on every call.
        self._bases.add(inst.base)
        return info

    def _fee_ratio(self, fee_bps: Decimal) -> tuple[int, int]:
        num, den = fee_bps.as_integer_ratio()
        ratio = self._fee_ratios[fee_bps] = (num, den * 10_000)
        return ratio

    def _add(
        self, res: Reservation, account: Account, line: AssetLine, venue_line: VenueLine
    ) -> None:
        """Count a new reservation (``reserve``, ``restore``) and hold what it needs; its
        cells are (its venue, its asset), its base and its venue."""
        amount, left = res.holds()  # first: whatever it raises, nothing is counted yet
        res.account, res.line, res.venue_line = account, line, venue_line
        venue_line.open_orders += 1
        self.ledger.open_total += 1
        self._set(res, amount, left)

    def _move(self, account: Account, line: AssetLine, delta: int) -> None:
        """Trading moved ``delta`` atoms of ``account``'s asset in or out (``line`` is that
        asset's): balance, available and inventory together."""
        key = account.key
        self._balances[key] = self._balances.get(key, 0) + delta
        account.available += delta
        line.inventory += delta

    def _set(self, res: Reservation, amount: int, left: int) -> None:
        """Make ``res`` hold ``amount`` atoms of its asset with ``left`` base atoms still to
        fill, moving its account's available and its base's in-flight sum by the
        difference."""
        res.account.available -= amount - res.amount
        res.amount = amount
        delta = left - res.left
        if delta:
            if res.side is Side.BUY:
                res.line.open_buy += delta
            else:
                res.line.open_sell += delta
            res.left = left

    def _roll_day(self) -> None:
        day = self._clock() // NS_PER_DAY
        if day != self._day:
            # A clock stepping back (NTP) must not resurrect yesterday: any change of day
            # starts a fresh one.
            self._day = day
            self._realized_today = {}

    def _mark(self, marks: Marks, asset: str) -> tuple[int, int]:
        mark = marks.get(asset)
        if mark is None:
            if asset == self.reference:
                return 1, 1
            raise KeyError(f"no mark for {asset} (needed to value it in {self.reference})")
        return _ratio(mark, asset)

    def _value(self, amounts: Mapping[str, int], marks: Marks) -> int:
        total = 0
        for asset, amount in sorted(amounts.items()):
            if amount:
                num, den = self._mark(marks, asset)
                total += (amount * num) // den  # floor: against us
        return total


@dataclass(slots=True)
class _Contract:
    """One derivative's open position (base atoms) and entry value (quote atoms), both
    signed like the position, in its quote asset."""

    quote: str
    position: int = 0
    entry: int = 0


class _InstrumentInfo(NamedTuple):
    venue: str
    base: str
    quote: str
    scale: AtomScale
    # Its ledger cells: fills move both accounts and both assets, a reservation holds one
    # account and counts on the base and the venue.
    base_account: Account
    quote_account: Account
    base_line: AssetLine
    quote_line: AssetLine
    venue_line: VenueLine
    derivative: bool


def _check_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be int atoms, not {type(value).__name__}")


def _int(value: object) -> int:
    # A snapshot that went through the journal has its >64-bit ints as decimal text.
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    _check_int(value, "snapshot value")
    assert isinstance(value, int)
    return value


def _rows(table: Mapping[Key, int]) -> list[list[str | int]]:
    return [[venue, asset, n] for (venue, asset), n in sorted(table.items())]


def _assets(table: Mapping[str, int]) -> dict[str, int]:
    return {asset: n for asset, n in sorted(table.items()) if n}


def _from_assets(table: Mapping[str, Any]) -> dict[str, int]:
    return {asset: _int(n) for asset, n in table.items()}
