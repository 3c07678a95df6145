"""The vocabulary the engine, risk, execution, portfolio, gateways and journal share.

Money is exact. In an order, price and size are integer units of the instrument's grids
(``instrument.price`` / ``instrument.size``), exactly what the book and the spread
calculator use and what goes on the wire. Across instruments (balances, inventory, fees,
PnL) amounts are integer *atoms*: 10**-18 of an asset. Every venue's tick, lot and contract
size is a finite decimal with far fewer places, so the conversion is an exact integer
multiplication and sums over venues never round. Fees are the one place where a value is
not on any grid (notional x bps); they are rounded *up* to the atom, against us.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Protocol

from arbengine._core.instrument import Instrument

ATOM_DECIMALS = 18
ATOMS = 10**ATOM_DECIMALS  # atoms in one unit of an asset


class Side(IntEnum):
    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class TimeInForce(StrEnum):
    IOC = "IOC"
    FOK = "FOK"


class Purpose(StrEnum):
    ENTRY = "entry"  # one of an arb's two legs
    UNWIND = "unwind"  # gives back a filled excess on its own venue
    CHASE = "chase"  # completes a missing leg on the other venue
    FLATTEN = "flatten"  # the kill switch's FLATTEN level closing what the portfolio holds


class OrderStatus(StrEnum):
    NEW = "new"  # built, not yet handed to a gateway
    SENT = "sent"  # handed to the gateway (bytes written for live ones)
    ACKED = "acked"  # the venue took it
    FILLED = "filled"  # done: fully filled
    CANCELED = "canceled"  # done: IOC/FOK remainder expired (maybe after partial fills)
    REJECTED = "rejected"  # done: refused, nothing filled
    UNKNOWN = "unknown"  # no answer in time: possible exposure until the venue confirms

    @property
    def done(self) -> bool:
        return self in _DONE


_DONE = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED})


@dataclass(frozen=True, slots=True)
class AtomScale:
    """An instrument's conversions from (price units, size units) to asset atoms."""

    base_per_size: int  # base atoms per size unit (contracts: times the multiplier)
    quote_per_price_size: int  # quote atoms per price unit x size unit (notional)

    @staticmethod
    def of(instrument: Instrument) -> AtomScale:
        # A grid's one unit is mantissa * 10**-decimals; the multiplier grid's one unit is
        # the contract size itself (1 for spot).
        price, size, mult = instrument.price, instrument.size, instrument.multiplier
        places = ATOM_DECIMALS - size.decimals - mult.decimals
        if places - price.decimals < 0:
            raise ValueError(f"{instrument.name}: grids too fine for {ATOM_DECIMALS} decimals")
        base = size.mantissa * mult.mantissa * 10**places
        notional = price.mantissa * size.mantissa * mult.mantissa * 10 ** (places - price.decimals)
        return AtomScale(base, notional)

    def base(self, size: int) -> int:
        return size * self.base_per_size

    def notional(self, price: int, size: int) -> int:
        return price * size * self.quote_per_price_size

    def fee(self, price: int, size: int, fee_bps: Decimal) -> int:
        """Fee in quote atoms on a fill, rounded up (a fee is never under-counted).

        Integer arithmetic throughout: Decimal would round at 28 digits, and a notional in
        atoms already has 20-odd.
        """
        num, den = fee_bps.as_integer_ratio()
        return -((-self.notional(price, size) * num) // (den * 10_000))


def atoms(amount: str | int | Decimal) -> int:
    """Exact atoms of a decimal amount ("0.5" -> 5 * 10**17); refuses floats and sub-atom
    precision rather than rounding."""
    if isinstance(amount, (bool, float)):
        raise TypeError(f"amounts are decimal text or int, not {type(amount).__name__}")
    value = amount if isinstance(amount, Decimal) else Decimal(amount)
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {amount!r}")
    num, den = value.as_integer_ratio()  # exact, unlike scaleb under a 28-digit context
    scaled: int = (num * ATOMS) // den
    if scaled * den != num * ATOMS:
        raise ValueError(f"{amount} has more than {ATOM_DECIMALS} decimals")
    return scaled


def from_atoms(value: int) -> Decimal:
    """Atoms back to an exact Decimal (for reports and the journal, not the hot path)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), ATOMS)
    text = f"{sign}{whole}.{frac:0{ATOM_DECIMALS}d}".rstrip("0").rstrip(".")
    return Decimal(text)


@dataclass(slots=True)
class Order:
    """One order, from intent to final state. Sizes and prices are grid units."""

    client_id: str
    arb_id: str
    instrument: Instrument
    side: Side
    price: int  # limit, price units
    size: int  # size units
    tif: TimeInForce = TimeInForce.IOC
    purpose: Purpose = Purpose.ENTRY
    status: OrderStatus = OrderStatus.NEW
    filled: int = 0  # size units
    cost: int = 0  # sum of fill price x size, in price units x size units
    fee: int = 0  # quote atoms (or fee_asset atoms)
    fee_asset: str = ""
    venue_order_id: str = ""
    reason: str = ""  # why rejected / canceled / unknown
    created_ns: int = 0  # time.monotonic_ns() at creation
    sent_ns: int = 0  # handed to the gateway
    acked_ns: int = 0
    done_ns: int = 0
    fills: list[Fill] = field(default_factory=list)

    @property
    def venue(self) -> str:
        return self.instrument.venue

    @property
    def remaining(self) -> int:
        return self.size - self.filled

    def record(self, fill: Fill) -> None:
        """Add ``fill`` to the order's own totals (no duplicate check: the caller's job)."""
        self.fills.append(fill)
        self.filled += fill.size
        self.cost += fill.price * fill.size
        self.fee += fill.fee
        self.fee_asset = fill.fee_asset


@dataclass(frozen=True, slots=True)
class Fill:
    client_id: str
    price: int  # price units
    size: int  # size units
    fee: int  # atoms of fee_asset, rounded up
    fee_asset: str
    ts_ns: int  # time.monotonic_ns() when the fill was known here
    trade_id: str = ""
    late: bool = False  # arrived after the order had been given up as UNKNOWN


class OrderEvents(Protocol):
    """What a gateway reports back. Every call happens on the event loop."""

    def on_ack(self, order: Order, ts_ns: int) -> None: ...

    def on_fill(self, order: Order, fill: Fill) -> None: ...

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None: ...


class NoEvents:
    """The listener a gateway reports to before ``set_listener``: nothing listens yet."""

    def on_ack(self, order: Order, ts_ns: int) -> None:
        pass

    def on_fill(self, order: Order, fill: Fill) -> None:
        pass

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        pass


class Gateway(Protocol):
    """A venue's order entry: the paper gateway now, the live ones later.

    ``submit`` never blocks and never raises for venue-side problems: it hands the order off
    (for live gateways: writes the bytes) and returns the monotonic ns at which it did;
    everything after comes through ``OrderEvents``. ``query`` asks the venue for an order's
    state by client id, which is how an UNKNOWN outcome gets resolved.
    """

    venue: str

    def set_listener(self, events: OrderEvents) -> None: ...

    def submit(self, order: Order) -> int: ...

    async def query(self, client_id: str) -> Order | None: ...
