from arbengine._core.fixed import Grid

DEPTH_NONE: int
DEPTH_SNAPSHOT: int
DEPTH_UPDATE: int
LAYOUT_PAIRS: int
LAYOUT_KRAKEN2: int
LAYOUT_COINBASE: int

class LevelBuffer:
    def __init__(self, capacity: int = 256) -> None: ...
    def __len__(self) -> int: ...
    def levels(self) -> list[tuple[int, int, int]]: ...

def parse_level_span(
    text: bytes, layout: int, side: int, price: Grid, size: Grid, out: LevelBuffer
) -> list[tuple[int, int, int]]: ...
