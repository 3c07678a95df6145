from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine._core.ledger import Account, AssetLine, Ledger, VenueLine
from arbengine._core.spread import SpreadResult

R_OK: int
R_REASONS: int

class Bucket:
    unit: int
    rate: int
    cap: int
    reserve: int
    level: int
    stamp: int
    def refill(self, now: int) -> int: ...

def take(takes: tuple[tuple[Bucket, int], ...], now: int, priority: bool) -> bool: ...

class VenueState:
    name: str
    limits: Any  # arbengine.risk.VenueLimits
    buckets: tuple[Bucket, ...]
    max_age: int
    max_open: int
    failures: int
    cooldown: int
    consecutive: int
    open_until: int
    trial_until: int
    window: int
    rejects: deque[int]
    timeouts: deque[int]
    resyncs: deque[int]
    unhealthy_until: int
    line: VenueLine

class Rules:
    instrument: Instrument
    venue: VenueState
    base: str
    quote: str
    lot: int
    min_size: int
    min_notional: int
    base_per_size: int
    quote_per_px_size: int
    fee_bps: Decimal
    fee_num: int
    fee_den: int
    takes: tuple[tuple[Bucket, int], ...]
    quote_account: Account
    base_account: Account
    derivative: bool
    def check_conform(self, price: int, size: int) -> int: ...

class PairGate:
    a: Rules
    b: Rules
    base: str
    min_edge: Decimal
    max_edge: Decimal
    min_edge_num: int
    min_edge_den: int
    max_edge_num: int
    max_edge_den: int
    min_base: int
    max_base: int
    min_notional: int
    max_notional: int
    max_inventory: int
    max_exposure: int
    same_venue: bool
    takes: tuple[tuple[Bucket, int], ...]
    asset: AssetLine

class GateCore:
    _level: Any  # arbengine.risk.KillLevel
    _pairs: dict[str, PairGate]
    _portfolio: Any  # arbengine.risk.PortfolioView
    _ledger: Ledger
    _max_age: int
    _max_open_total: int
    counts: list[int]
    last_venue: str
    c_path: bool
    @property
    def slow_checks(self) -> int: ...
    @property
    def _clock(self) -> Callable[[], int]: ...
    @property
    def _wall(self) -> Callable[[], int]: ...
    def _set_clocks(self, clock: Callable[[], int], wall_clock: Callable[[], int]) -> None: ...
    def check(
        self,
        pair_id: str,
        buy: Instrument,
        sell: Instrument,
        bp: int,
        bz: int,
        sp: int,
        sz: int,
        buy_live: bool,
        buy_updated_ns: int,
        sell_live: bool,
        sell_updated_ns: int,
        edge_num: int,
        edge_den: int,
        trigger_recv_ns: int,
        exch_ts_ns: int,
        clock_offset_ns: int | None,
    ) -> int: ...

class ArbGate:
    @property
    def core(self) -> GateCore: ...
    @property
    def pair(self) -> PairGate: ...
    @property
    def rules_a(self) -> Rules: ...
    @property
    def rules_b(self) -> Rules: ...
    @property
    def book_a(self) -> Book: ...
    @property
    def book_b(self) -> Book: ...
    @property
    def wall(self) -> Callable[[], int] | None: ...
    def __init__(
        self,
        core: GateCore,
        pair_id: str,
        a: Instrument,
        b: Instrument,
        book_a: Book,
        book_b: Book,
        wall: Callable[[], int] | None = None,
    ) -> None: ...
    def check(
        self,
        res: SpreadResult,
        live_a: bool,
        live_b: bool,
        recv_ns: int,
        trigger: Book,
        trigger_clock: Any,
    ) -> int: ...
