from typing import Any

from arbengine._core.fixed import Grid

class HmacSha256:
    def __init__(self, key: bytes) -> None: ...
    def hexdigest(self, data: bytes | bytearray | memoryview) -> str: ...

class OrderTemplate:
    slots: int
    signed: bool
    price: Grid
    size: Grid
    def __init__(self, text: str, price: Grid, size: Grid) -> None: ...

class OrderWire:
    written: int
    def __init__(self, key: bytes | None = None) -> None: ...
    def render(
        self,
        frame: OrderTemplate,
        payload: OrderTemplate | None,
        rid: str,
        cid: str,
        price: int,
        size: int,
        ts: int,
    ) -> bytes: ...
    def write(
        self,
        transport: Any,
        frame: OrderTemplate,
        payload: OrderTemplate | None,
        rid: str,
        cid: str,
        price: int,
        size: int,
        ts: int,
    ) -> int: ...
