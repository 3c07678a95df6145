from arbengine._core.book import Book
from arbengine._core.instrument import Instrument

RULE_BINANCE_SPOT: int
RULE_BINANCE_FUTURES: int
RULE_OKX: int
RULE_BYBIT: int
RULE_COINBASE: int
RULE_KRAKEN: int
DOWN: int
SYNCING: int
LIVE: int
RESYNCING: int
OUT_IGNORED: int
OUT_BUFFERED: int
OUT_NEED_SNAPSHOT: int
OUT_APPLIED: int
OUT_SNAPSHOT: int
OUT_RESYNC: int
REASON_NONE: int
REASON_GAP: int
REASON_CHECKSUM: int
REASON_CROSSED: int
REASON_PARSE: int
REASON_STALE_SNAPSHOT: int
STATE_NAMES: dict[int, str]
REASON_NAMES: dict[int, str]

class BookSync:
    book: Book
    instrument: Instrument
    rule: int
    state: int
    last_id: int
    bridged: bool
    price_decimals: int
    qty_decimals: int
    last_reason: int
    last_error: str
    messages: int
    applied: int
    snapshots: int
    ignored: int
    buffered: int
    gaps: int
    checksum_failures: int
    crossed_books: int
    parse_errors: int
    stale_snapshots: int
    resyncs: int
    def __init__(
        self,
        instrument: Instrument,
        rule: str,
        max_depth: int = 0,
        price_decimals: int | None = None,
        qty_decimals: int | None = None,
    ) -> None: ...
    def start(self) -> None: ...
    def down(self) -> None: ...
    def resync(self, error: str = "resync requested") -> int: ...
    def on_message(
        self,
        kind: int,
        bids: bytes | None,
        asks: bytes | None = None,
        *,
        layout: int = 0,
        mixed: bool = False,
        first_id: int | None = None,
        last_id: int | None = None,
        prev_id: int | None = None,
        exch_ts_ns: int = 0,
        recv_ts_ns: int = 0,
        checksum: int | None = None,
        symbol: bytes = b"",
    ) -> int: ...
    @property
    def live(self) -> bool: ...
    @property
    def state_name(self) -> str: ...
    @property
    def last_reason_name(self) -> str: ...
    def counters(self) -> dict[str, int]: ...
