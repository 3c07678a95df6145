from typing import ClassVar

from typing_extensions import Buffer

from arbengine._core.book import Book
from arbengine._core.fixed import Grid

FAMILY_BINANCE_DEPTH: int
FAMILY_BINANCE_SNAPSHOT: int
FAMILY_OKX_BOOKS: int
FAMILY_BYBIT_ORDERBOOK: int
FAMILY_BYBIT_SNAPSHOT: int
FAMILY_COINBASE_L2: int
FAMILY_KRAKEN_BOOK: int

# Venue names accepted by the functions below, in FrameFamily order.
VENUES: tuple[str, ...]

class FrameHeader:
    """A DepthMsg copied into Python objects (spans as bytes, NO_ID as None)."""

    kind: int
    layout: int
    mixed_sides: bool
    symbol: bytes | None
    bids: bytes | None
    asks: bytes | None
    first_id: int | None
    last_id: int | None
    prev_id: int | None
    exch_ts_ns: int
    has_checksum: bool
    checksum: int | None
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def as_dict(self) -> dict[str, object]: ...
    def __eq__(self, other: object) -> bool: ...

def parse_frame(venue: str, frame: bytes) -> FrameHeader: ...
def parse_frame_events(venue: str, frame: bytes) -> list[FrameHeader]: ...
def frame_levels(
    venue: str, frame: bytes, price: Grid, size: Grid
) -> tuple[FrameHeader, list[tuple[int, int, int]]]: ...
def rfc3339_ns(text: str | bytes) -> int: ...

class DepthPipeline:
    """Frames of one instrument into a Book, compiled end to end (no sequence checks)."""

    book: Book
    price: Grid
    size: Grid
    venue: str
    symbol: bytes | None
    applied: int
    ignored: int
    def __init__(
        self, venue: str, price: Grid, size: Grid, symbol: bytes | None = None, max_depth: int = 0
    ) -> None: ...
    def on_frame(self, frame: bytes, recv_ts_ns: int = 0) -> int: ...
    def on_rest(self, body: bytes, recv_ts_ns: int = 0) -> int: ...
    def run(self, frames: list[bytes], ns_out: Buffer | None = None) -> int: ...

def time_headers(venue: str, frames: list[bytes], ns_out: Buffer) -> int: ...
