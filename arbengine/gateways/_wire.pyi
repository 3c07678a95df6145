import asyncio
from collections.abc import Callable
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

class WsRequest:
    frame: OrderTemplate
    payload: OrderTemplate | None
    ts_add_ms: int
    id_map: Callable[[str], str] | None
    remember: dict[str, int] | None
    def __init__(
        self,
        frame: OrderTemplate,
        payload: OrderTemplate | None = None,
        *,
        ts_add_ms: int = 0,
        id_map: Callable[[str], str] | None = None,
        remember: dict[str, int] | None = None,
    ) -> None: ...

class GatewayCounters:
    submitted: int
    ws_sent: int
    rest_sent: int
    retries: int
    rejects: int
    unknown: int
    rate_limited: int
    clock_resyncs: int
    usage_pauses: int
    queries: int
    reject_codes: dict[str, int]
    def __init__(self) -> None: ...
    def as_dict(self) -> dict[str, Any]: ...

class Tracked:
    order: Any
    acked: bool
    done: bool
    trades: set[str]
    venue_order_id: str
    task: asyncio.Task[None] | None
    ws_deadline: int
    def __init__(self, order: Any) -> None: ...

class OrderEntry:
    wire: OrderWire
    counters: GatewayCounters
    ws: Any
    transport: Any
    ws_ok: bool
    blocked_until_ns: int
    offset_ms: int
    timeout_ns: int
    def __init__(
        self,
        gw: Any,
        instruments: dict[str, Any],
        tracked: dict[str, Tracked],
        pending: dict[str, str],
        templates: dict[str, list[Any]],
        clock: Callable[[], int],
        wall: Callable[[], int],
        wire: OrderWire,
        counters: GatewayCounters,
    ) -> None: ...
    def submit(self, order: Any) -> int: ...
    def render(self, order: Any, req_id: str) -> bytes: ...
    def warm(self, order: Any) -> bool: ...
