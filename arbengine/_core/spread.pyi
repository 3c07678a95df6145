from decimal import Decimal

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument

BUY_A_SELL_B: int
BUY_B_SELL_A: int
OK: int
EMPTY_BOOK: int
NO_EDGE: int
NO_CAPACITY: int
BELOW_MIN_SIZE: int
BELOW_MIN_NOTIONAL: int
NO_RATE: int

Amount = str | int | Decimal

class SpreadResult:
    direction: int
    status: int
    top_edge_bps: float
    base_qty: int
    buy_size: int
    sell_size: int
    buy_limit: int
    sell_limit: int
    buy_levels: int
    sell_levels: int
    size_decimals: int
    notional_decimals: int
    rate_decimals: int
    @property
    def ok(self) -> bool: ...
    @property
    def status_name(self) -> str: ...
    @property
    def size(self) -> Decimal: ...
    @property
    def cost_quanta(self) -> int: ...
    @property
    def proceeds_quanta(self) -> int: ...
    @property
    def profit_decimals(self) -> int: ...
    @property
    def profit_scaled(self) -> int: ...
    @property
    def buy_notional(self) -> Decimal: ...
    @property
    def sell_notional(self) -> Decimal: ...
    @property
    def cost_ref(self) -> Decimal: ...
    @property
    def profit(self) -> Decimal: ...
    @property
    def edge_ratio(self) -> tuple[int, int]: ...
    @property
    def buy_vwap(self) -> float: ...
    @property
    def sell_vwap(self) -> float: ...

class SpreadCalculator:
    instrument_a: Instrument
    instrument_b: Instrument
    price_decimals: int
    size_decimals: int
    cross_quote: bool
    @property
    def min_edge_bps(self) -> Decimal: ...
    @min_edge_bps.setter
    def min_edge_bps(self, value: Amount) -> None: ...
    @property
    def max_size(self) -> Decimal | None: ...
    @max_size.setter
    def max_size(self, value: Amount | None) -> None: ...
    def __init__(
        self,
        instrument_a: Instrument,
        instrument_b: Instrument,
        fee_a_bps: Amount,
        fee_b_bps: Amount,
        min_edge_bps: Amount = 0,
        max_size: Amount | None = None,
        *,
        cross_quote: bool = False,
    ) -> None: ...
    @property
    def quote_rate(self) -> tuple[Decimal, Decimal] | None: ...
    def set_quote_rate(self, pay: Amount, get: Amount) -> None: ...
    def clear_quote_rate(self) -> None: ...
    @property
    def step(self) -> Decimal: ...
    @property
    def notional_decimals(self) -> int: ...
    def set_balances(
        self,
        *,
        quote_a: Amount | None = None,
        base_a: Amount | None = None,
        quote_b: Amount | None = None,
        base_b: Amount | None = None,
    ) -> None: ...
    def calc(self, book_a: Book, book_b: Book, direction: int) -> SpreadResult: ...
    def calc_into(self, book_a: Book, book_b: Book, direction: int, out: SpreadResult) -> None: ...
    def top_edges(self, book_a: Book, book_b: Book) -> tuple[float, float]: ...
