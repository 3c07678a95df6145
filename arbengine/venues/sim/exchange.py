"""The simulated venues' order side: accounts, balances, a matching engine against the venue's
own TRUE book, and the fate of each order request under fault injection.

Venue-neutral: each venue server (``binance.py``, ``okx.py`` ...) parses and verifies its own
signed requests, calls ``SimExchange`` with plain values, and answers in its own reply
shapes and error codes, mapping ``SimReject.kind`` to the venue's code.

Like ``model.py``, nothing here shares the client's code: amounts are ints of the venue's
grids (ticks, lots) and balances ints of 10**-18 of an asset, parsed from decimal text here.

Matching takes from the true book's levels up to the limit price without consuming them
(our sizes are small against the depth, as in the paper gateway); each level taken is one
trade with its own trade id. IOC keeps what it got and expires the rest; FOK fills entirely
or expires with nothing; GTC rests what does not fill (locking its balance) and is never
matched again later (resting orders exist so leftovers of a previous run can be found,
cancelled or adopted). Fees are the taker rate on each trade, rounded *up* to 10**-8 (as
venues display fees), charged in the quote asset or in what the trade received
(``fee_in``). A futures market keeps a signed position per symbol instead of base
balances and charges fees in the settlement (quote) asset.

Futures accounting is the venue's (one-way mode): per symbol a signed position (lots) and
a signed basis (quote atoms, the position's sign: what a long cost, minus what a short
received). A fill that grows the position adds its notional to the basis; one that reduces
it closes ``basis x closed / |position|`` (truncated toward zero) and books the realized
PnL of that part into the wallet (the quote's free balance); one that flips closes all and
opens the rest. So the wallet moves by realized PnL and fees only, as a venue's wallet
balance does, and ``wallet - sum(basis)`` is exactly the start less every trade's signed
notional (buys positive) and fees: what a spot account's cash would be.

Fault fates of an order request (``fate``), from the venue's ``FaultInjector``:
ORDER_REJECT (refused: nothing done), ORDER_429/ORDER_418 (refused with Retry-After),
ORDER_TIMEOUT (done normally, but the reply is lost: the server must not answer),
ORDER_LATE_FILL (acked as new; matched ``seconds`` later) and ORDER_PARTIAL (at most half
the size fills). ``skew_ms`` shifts the venue's clock (clock-skew tests).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from arbengine.venues.sim.faults import Fault, FaultInjector, FaultRule
from arbengine.venues.sim.model import ASK, BID, SimInstrument, TrueBook

__all__ = [
    "ATOMS",
    "Fate",
    "RejectKind",
    "SimAccount",
    "SimExchange",
    "SimFill",
    "SimMarket",
    "SimOrder",
    "SimReject",
    "atoms_text",
    "parse_atoms",
]

ATOMS = 10**18
_FEE_STEP = 10**10  # fees rounded up to 10**-8 of the asset


def parse_atoms(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not finite")
    num, den = value.as_integer_ratio()
    scaled, rest = divmod(num * ATOMS, den)
    if rest:
        raise ValueError(f"{text!r} has more than 18 decimals")
    return scaled


def atoms_text(value: int, decimals: int = 8) -> str:
    """Atoms as fixed-point text with ``decimals`` places (exact: atoms finer than that are
    not shown only if they are zero; otherwise all 18 places are)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), ATOMS)
    digits = f"{frac:018d}"
    shown = digits[:decimals]
    if digits[decimals:].strip("0"):
        shown = digits.rstrip("0")
    return f"{sign}{whole}.{shown}" if shown else f"{sign}{whole}"


class RejectKind(StrEnum):
    UNKNOWN_SYMBOL = "unknown_symbol"
    BAD_PRICE = "bad_price"  # not a positive multiple of the tick
    BAD_SIZE = "bad_size"  # not a positive multiple of the lot
    MIN_SIZE = "min_size"
    MIN_NOTIONAL = "min_notional"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    DUPLICATE_CLIENT_ID = "duplicate_client_id"
    NOT_FOUND = "not_found"
    BAD_TIF = "bad_tif"
    INJECTED = "injected"


class SimReject(Exception):
    def __init__(self, kind: RejectKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class SimMarket:
    """One tradable symbol's order rules on top of its book instrument."""

    instrument: SimInstrument
    base: str
    quote: str
    min_size: str = "0"  # in the size unit
    min_notional: str = "0"  # quote
    multiplier: str = "1"  # contract size in base (futures); 1 for spot


@dataclass(frozen=True)
class SimFill:
    trade_id: int
    price: int  # ticks
    size: int  # lots
    fee: int  # atoms of fee_asset
    fee_asset: str
    ts_ms: int
    realized: int = 0  # futures: quote atoms of PnL the trade realized (fees not included)


@dataclass
class SimOrder:
    order_id: int
    client_id: str
    account: str
    symbol: str
    side: str  # "BUY" | "SELL"
    price: int  # ticks
    size: int  # lots
    tif: str  # "IOC" | "FOK" | "GTC"
    created_ms: int
    status: str = "NEW"  # NEW PARTIALLY_FILLED FILLED CANCELED EXPIRED
    filled: int = 0
    fills: list[SimFill] = field(default_factory=list)
    updated_ms: int = 0

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def quote_units(self) -> int:
        """Sum of price x size over the fills, in tick x lot units."""
        return sum(f.price * f.size for f in self.fills)

    @property
    def fee_total(self) -> int:
        return sum(f.fee for f in self.fills)


@dataclass
class SimAccount:
    key: str
    secret: str
    passphrase: str | None = None
    free: dict[str, int] = field(default_factory=dict)  # atoms
    locked: dict[str, int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)  # futures: signed lots
    # futures: signed quote atoms the open position cost (long +, short -): entry price x
    # position, kept exactly so that realized PnL telescopes to the atom
    basis: dict[str, int] = field(default_factory=dict)

    def balance(self, asset: str) -> int:
        return self.free.get(asset, 0)


@dataclass(frozen=True)
class Fate:
    """What fault injection decided for one order request."""

    rule: FaultRule | None = None
    kind: Fault | None = None

    @property
    def lost_reply(self) -> bool:
        return self.kind is Fault.ORDER_TIMEOUT

    @property
    def seconds(self) -> float:
        return self.rule.seconds if self.rule is not None else 0.0


_FATES = (
    Fault.ORDER_418,
    Fault.ORDER_429,
    Fault.ORDER_REJECT,
    Fault.ORDER_TIMEOUT,
    Fault.ORDER_LATE_FILL,
    Fault.ORDER_PARTIAL,
)


class SimExchange:
    """One venue's accounts and matching engine."""

    def __init__(
        self,
        markets: Mapping[str, SimMarket],
        book: Callable[[str], TrueBook],
        *,
        faults: FaultInjector,
        fee_bps: str = "10",
        fee_in: str = "quote",  # "quote" | "received"
        futures: bool = False,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if fee_in not in ("quote", "received"):
            raise ValueError(f"fee_in must be quote or received, not {fee_in!r}")
        self.markets = dict(markets)
        self._book = book
        self.faults = faults
        fee = Decimal(fee_bps)
        self._fee_num, self._fee_den = fee.as_integer_ratio()
        self._fee_den *= 10_000
        self.fee_in = fee_in
        self.futures = futures
        self._wall_ms = wall_ms
        self.skew_ms = 0
        self.accounts: dict[str, SimAccount] = {}
        self.orders: dict[int, SimOrder] = {}
        self._by_client: dict[tuple[str, str], SimOrder] = {}
        self._order_ids = itertools.count(1_000_001)
        self._trade_ids = itertools.count(5_000_001)
        self.requests = 0  # order requests seen (signed and accepted as requests)

    # -- accounts and clock ------------------------------------------------------------------

    def add_account(
        self,
        key: str,
        secret: str,
        passphrase: str | None = None,
        balances: Mapping[str, str] | None = None,
    ) -> SimAccount:
        account = SimAccount(key, secret, passphrase)
        for asset, text in (balances or {}).items():
            account.free[asset] = parse_atoms(text)
        self.accounts[key] = account
        return account

    def account(self, key: str) -> SimAccount | None:
        return self.accounts.get(key)

    def now_ms(self) -> int:
        """The venue's clock (with the injected skew)."""
        return self._wall_ms() + self.skew_ms

    # -- conversions -------------------------------------------------------------------------

    def market(self, symbol: str) -> SimMarket:
        market = self.markets.get(symbol)
        if market is None:
            raise SimReject(RejectKind.UNKNOWN_SYMBOL, f"unknown symbol {symbol}")
        return market

    def base_atoms(self, symbol: str, lots: int) -> int:
        m = self.market(symbol)
        return parse_atoms(str(Decimal(m.instrument.lot) * Decimal(m.multiplier))) * lots

    def notional(self, symbol: str, ticks: int, lots: int) -> int:
        """Quote atoms of ``lots`` at ``ticks`` (exact)."""
        m = self.market(symbol)
        num, den = (Decimal(m.instrument.tick) * Decimal(m.instrument.lot)).as_integer_ratio()
        mult_num, mult_den = Decimal(m.multiplier).as_integer_ratio()
        value, rest = divmod(ticks * lots * num * mult_num * ATOMS, den * mult_den)
        assert not rest  # tick x lot x multiplier is a finite decimal of < 18 places
        return value

    def fee(self, notional: int) -> int:
        raw = -((-notional * self._fee_num) // self._fee_den)
        return -((-raw) // _FEE_STEP) * _FEE_STEP

    # -- fault fate --------------------------------------------------------------------------

    def fate(self, symbol: str | None) -> Fate:
        """The fault (if any) this order request meets; counted by the injector."""
        for kind in _FATES:
            rule = self.faults.take(kind, symbol, kind.value)
            if rule is not None:
                return Fate(rule, kind)
        return Fate()

    # -- orders ------------------------------------------------------------------------------

    def place(
        self,
        key: str,
        symbol: str,
        side: str,
        price: str,
        size: str,
        tif: str,
        client_id: str,
        *,
        fate: Fate | None = None,
    ) -> SimOrder:
        """Accept and match one limit order (SimReject if the venue refuses it)."""
        self.requests += 1
        account = self.accounts[key]
        m = self.market(symbol)
        inst = m.instrument
        if side not in ("BUY", "SELL"):
            raise SimReject(RejectKind.BAD_SIZE, f"bad side {side!r}")
        if tif not in ("IOC", "FOK", "GTC"):
            raise SimReject(RejectKind.BAD_TIF, f"bad time in force {tif!r}")
        try:
            ticks = inst.price.parse(price)
        except ValueError as exc:
            raise SimReject(RejectKind.BAD_PRICE, str(exc)) from None
        try:
            lots = inst.size.parse(size)
        except ValueError as exc:
            raise SimReject(RejectKind.BAD_SIZE, str(exc)) from None
        if ticks <= 0:
            raise SimReject(RejectKind.BAD_PRICE, f"price {price} must be positive")
        if lots <= 0:
            raise SimReject(RejectKind.BAD_SIZE, f"size {size} must be positive")
        if Decimal(size) < Decimal(m.min_size):
            raise SimReject(RejectKind.MIN_SIZE, f"size {size} below {m.min_size}")
        notional = self.notional(symbol, ticks, lots)
        if notional < parse_atoms(m.min_notional):
            raise SimReject(RejectKind.MIN_NOTIONAL, f"notional below {m.min_notional}")
        if client_id and (key, client_id) in self._by_client:
            raise SimReject(RejectKind.DUPLICATE_CLIENT_ID, f"duplicate client id {client_id}")
        fate = fate or Fate()
        if fate.kind is Fault.ORDER_REJECT:
            raise SimReject(RejectKind.INJECTED, "injected reject")
        need_asset, need = self._need(m, side, ticks, lots)
        if account.balance(need_asset) < need:
            raise SimReject(RejectKind.INSUFFICIENT_BALANCE, f"insufficient {need_asset} balance")
        now = self.now_ms()
        order = SimOrder(
            next(self._order_ids),
            client_id,
            key,
            symbol,
            side,
            ticks,
            lots,
            tif,
            now,
            updated_ms=now,
        )
        self.orders[order.order_id] = order
        if client_id:
            self._by_client[(key, client_id)] = order
        if fate.kind is Fault.ORDER_LATE_FILL:
            asyncio.get_running_loop().call_later(fate.seconds, self._match, order, False)
        else:
            self._match(order, fate.kind is Fault.ORDER_PARTIAL)
        return order

    def _need(self, m: SimMarket, side: str, ticks: int, lots: int) -> tuple[str, int]:
        symbol = m.instrument.symbol
        notional = self.notional(symbol, ticks, lots)
        if self.futures:
            return m.quote, self.fee(notional)  # margin is not modelled: the fee must be there
        if side == "BUY":
            fee = self.fee(notional) if self.fee_in == "quote" else 0
            return m.quote, notional + fee
        return m.base, self.base_atoms(symbol, lots)

    def _match(self, order: SimOrder, partial: bool) -> None:
        if not order.open:
            return
        book = self._book(order.symbol)
        buy = order.side == "BUY"
        levels = book.levels(ASK if buy else BID)
        want = order.size - order.filled
        if partial:
            want = max(1, want // 2)
        taken: list[tuple[int, int]] = []
        for price, size in levels:
            if want <= 0 or (price > order.price if buy else price < order.price):
                break
            take = min(size, want)
            taken.append((price, take))
            want -= take
        got = sum(s for _, s in taken)
        now = self.now_ms()
        order.updated_ms = now
        if order.tif == "FOK" and got < order.size - order.filled:
            order.status = "EXPIRED"
            return
        account = self.accounts[order.account]
        for price, size in taken:
            self._trade(account, order, price, size, now)
        if order.filled == order.size:
            order.status = "FILLED"
        elif order.tif == "GTC":
            order.status = "PARTIALLY_FILLED" if order.filled else "NEW"
            self._lock(account, order, +1)
        else:
            order.status = "EXPIRED"

    def _trade(self, account: SimAccount, order: SimOrder, price: int, size: int, now: int) -> None:
        m = self.markets[order.symbol]
        notional = self.notional(order.symbol, price, size)
        base = self.base_atoms(order.symbol, size)
        fee = self.fee(notional)
        buy = order.side == "BUY"
        free = account.free
        realized = 0
        if self.futures:
            fee_asset = m.quote
            realized = self._book_position(account, order.symbol, price, size if buy else -size)
            # The wallet moves by realized PnL and fees; the notional lives in the basis.
            free[m.quote] = free.get(m.quote, 0) + realized - fee
        else:
            fee_asset = m.quote if self.fee_in == "quote" else (m.base if buy else m.quote)
            if buy:
                free[m.quote] = free.get(m.quote, 0) - notional
                free[m.base] = free.get(m.base, 0) + base
            else:
                free[m.base] = free.get(m.base, 0) - base
                free[m.quote] = free.get(m.quote, 0) + notional
            if fee_asset == m.base:
                fee = self.fee(base)  # the rate on what was received, in base
            free[fee_asset] = free.get(fee_asset, 0) - fee
        order.fills.append(
            SimFill(next(self._trade_ids), price, size, fee, fee_asset, now, realized)
        )
        order.filled += size

    def _book_position(self, account: SimAccount, symbol: str, price: int, lots: int) -> int:
        """Apply a futures trade of signed ``lots`` at ``price`` to the position and its
        basis; returns the realized PnL (quote atoms)."""
        position = account.positions.get(symbol, 0)
        basis = account.basis.get(symbol, 0)
        realized = 0
        opening = lots
        if position and (position > 0) != (lots > 0):
            closed = min(abs(lots), abs(position))
            # Truncated toward zero; a full close takes the whole basis, so a flat position
            # never keeps a remainder.
            part = abs(basis) * closed // abs(position)
            closed_basis = part if basis >= 0 else -part
            closing_value = self.notional(symbol, price, closed if lots > 0 else -closed)
            # Long closed by a sell: proceeds - cost; short closed by a buy: what the short
            # received - what buying back cost. Both are -(signed value + closed basis).
            realized = -(closing_value + closed_basis)
            basis -= closed_basis
            position += closed if lots > 0 else -closed
            opening = lots + closed if lots < 0 else lots - closed
        if opening:
            basis += self.notional(symbol, price, opening)
            position += opening
        account.positions[symbol] = position
        account.basis[symbol] = basis
        return realized

    def entry_price(self, key: str, symbol: str, places: int = 8) -> str:
        """The average entry price of ``key``'s position (|basis| / |position in base|)
        as decimal text with ``places`` decimals, rounded half up; "0.0" when flat."""
        account = self.accounts[key]
        position = account.positions.get(symbol, 0)
        if not position:
            return "0.0"
        base = abs(self.base_atoms(symbol, position))
        scaled = (2 * abs(account.basis.get(symbol, 0)) * 10**places + base) // (2 * base)
        whole, frac = divmod(scaled, 10**places)
        return f"{whole}.{frac:0{places}d}" if places else f"{whole}"

    def mark_value(self, key: str, symbol: str) -> int | None:
        """``key``'s position valued at the book's mid (quote atoms, signed, rounded down);
        None when the book has no two sides to take a mid from."""
        book = self._book(symbol)
        bid, ask = book.best(BID), book.best(ASK)
        if bid is None or ask is None:
            return None
        lots = self.accounts[key].positions.get(symbol, 0)
        return (self.notional(symbol, bid, lots) + self.notional(symbol, ask, lots)) // 2

    def unrealized(self, key: str, symbol: str) -> int:
        """Quote atoms ``key``'s position would realize at the book's mid (0 without one)."""
        value = self.mark_value(key, symbol)
        return 0 if value is None else value - self.accounts[key].basis.get(symbol, 0)

    def _lock(self, account: SimAccount, order: SimOrder, sign: int) -> None:
        if self.futures:
            return
        m = self.markets[order.symbol]
        left = order.size - order.filled
        if order.side == "BUY":
            asset, amount = m.quote, self.notional(order.symbol, order.price, left)
        else:
            asset, amount = m.base, self.base_atoms(order.symbol, left)
        account.free[asset] = account.free.get(asset, 0) - sign * amount
        account.locked[asset] = account.locked.get(asset, 0) + sign * amount

    def cancel(self, key: str, *, client_id: str = "", order_id: int | None = None) -> SimOrder:
        order = self.get(key, client_id=client_id, order_id=order_id)
        if order is None or not order.open:
            raise SimReject(RejectKind.NOT_FOUND, "unknown order")
        if order.tif == "GTC":
            self._lock(self.accounts[key], order, -1)
        order.status = "CANCELED"
        order.updated_ms = self.now_ms()
        return order

    def get(self, key: str, *, client_id: str = "", order_id: int | None = None) -> SimOrder | None:
        if order_id is not None:
            order = self.orders.get(order_id)
            return order if order is not None and order.account == key else None
        return self._by_client.get((key, client_id))

    def open_orders(self, key: str, symbol: str | None = None) -> list[SimOrder]:
        return [
            o
            for o in self.orders.values()
            if o.account == key and o.open and (symbol is None or o.symbol == symbol)
        ]

    def rest(
        self, key: str, symbol: str, side: str, price: str, size: str, client_id: str
    ) -> SimOrder:
        """A resting GTC order placed away from the market (a previous run's leftover)."""
        return self.place(key, symbol, side, price, size, "GTC", client_id)
