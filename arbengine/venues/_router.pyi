from arbengine.venues._clock import ClockOffset
from arbengine.venues._sync import BookSync

NO_BOOK: int

class FeedRouter:
    family: int
    snapshot_family: int
    syncs: list[BookSync]
    clock: ClockOffset
    last_index: int
    last_error: str
    last_sequence: int
    frames: int
    not_book: int
    frame_errors: int
    unknown_symbols: int
    sequence_gaps: int
    def __init__(
        self,
        family: int,
        symbols: list[bytes],
        syncs: list[BookSync],
        snapshot_family: int = -1,
        clock: ClockOffset | None = None,
    ) -> None: ...
    def on_frame(self, frame: bytes, recv_mono_ns: int, recv_wall_ns: int) -> int: ...
    def on_snapshot(self, index: int, body: bytes, recv_mono_ns: int) -> int: ...
    def symbol(self, index: int) -> bytes: ...
