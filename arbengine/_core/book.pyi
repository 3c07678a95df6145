from collections.abc import Iterable

from typing_extensions import Buffer

BID: int
ASK: int

Level = tuple[int, int]

class Book:
    """An L2 book for one instrument on one venue, in integer ticks and lots."""

    name: str
    max_depth: int
    seq: int
    exch_ts_ns: int
    recv_ts_ns: int
    updates: int
    crossed: bool
    def __init__(self, max_depth: int = 0, name: str = "", capacity: int = 0) -> None: ...
    def apply(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        seq: int = -1,
        exch_ts_ns: int = 0,
        recv_ts_ns: int = 0,
    ) -> bool: ...
    def load_snapshot(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        seq: int = -1,
        exch_ts_ns: int = 0,
        recv_ts_ns: int = 0,
    ) -> bool: ...
    def set(self, side: int, price: int, size: int) -> None: ...
    def finish(self, seq: int = -1, exch_ts_ns: int = 0, recv_ts_ns: int = 0) -> bool: ...
    def clear(self) -> None: ...
    def best_bid(self) -> Level | None: ...
    def best_ask(self) -> Level | None: ...
    def top(self, side: int, n: int = -1) -> list[Level]: ...
    def bids(self, n: int = -1) -> list[Level]: ...
    def asks(self, n: int = -1) -> list[Level]: ...
    @property
    def bid_depth(self) -> int: ...
    @property
    def ask_depth(self) -> int: ...
    @property
    def capacity(self) -> tuple[int, int]: ...

def replay_packed(book: Book, levels: Buffer, ends: Buffer) -> tuple[int, int]: ...
