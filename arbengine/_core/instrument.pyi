from arbengine._core.fixed import Grid

class Instrument:
    venue: str
    symbol: str
    base: str
    quote: str
    price: Grid
    size: Grid
    lot: int
    multiplier: Grid
    min_size: int
    min_notional: str
    derivative: bool
    def __init__(
        self,
        venue: str,
        symbol: str,
        base: str,
        quote: str,
        tick: str,
        lot: str,
        multiplier: str = "1",
        min_size: str = "0",
        min_notional: str = "0",
        size_step: str | None = None,
        derivative: bool = False,
    ) -> None: ...
    @property
    def name(self) -> str: ...
