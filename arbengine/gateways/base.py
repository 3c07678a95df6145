"""What every live order gateway shares: the order life cycle, retries, rate-limit feedback,
server-time sync, and the venue-neutral shapes of what a venue reports.

A venue's gateway (``gateways/binance.py`` ...) subclasses ``LiveGateway`` and supplies the
venue's requests and the parsing of its replies (the ``_rest_*`` hooks, and the ``_ws_*``
hooks where it enters orders over a WebSocket). This class turns those into the
``orders.Gateway`` contract the executor relies on:

* ``submit`` never blocks and never raises for venue-side problems. Over a WebSocket it
  writes the signed frame before returning; over REST it starts the request task (the
  bytes go out on the loop's next turn, which the returned ns cannot include).
* Every answer becomes ``OrderEvents`` calls, each at most once per order: one ack, each
  fill once (by trade id), one final state.
* An order whose outcome is not known (timeout, disconnect, 5xx) is retried with the same
  client order id while the retry budget lasts (venues refuse a duplicate client id, which
  makes the retry safe), then left without a final state: the executor marks it UNKNOWN
  and asks ``query`` until the venue says. Nothing here ever calls an order rejected
  because it did not hear back.
* 429/418 (and the venue's own "too many requests" codes) reject the order that met them
  -- the venue did not take it -- and report the wait to ``on_rate_limit`` so the engine's
  rate gates stop new arbs on that venue for as long as the venue asks.
* A timestamp outside the venue's window rejects the order and resyncs the clock.

Amounts crossing this boundary are exact: prices and sizes in the instrument's grid units,
balances and fees in atoms (``orders.atoms``), parsed from the venue's decimal text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Generic, TypeVar

import aiohttp

from arbengine._core.instrument import Instrument
from arbengine.config_secrets import Secret
from arbengine.gateways._wire import GatewayCounters, OrderEntry, OrderWire, Tracked, WsRequest
from arbengine.orders import (
    AtomScale,
    Fill,
    NoEvents,
    Order,
    OrderEvents,
    OrderStatus,
    Side,
    TimeInForce,
)
from arbengine.venues.ws import FeedHandler, WsFeed

__all__ = [
    "Balance",
    "ClockSkew",
    "GatewayError",
    "HttpReply",
    "LiveGateway",
    "Position",
    "RateLimitHook",
    "RateLimited",
    "Rejected",
    "UnknownOutcome",
    "VenueCredentials",
    "VenueFill",
    "VenueOrder",
    "WsRequest",
    "grid_units",
    "order_texts",
]

# (venue, seconds to wait, banned): a 418 (IP ban) or a 429 (slow down).
RateLimitHook = Callable[[str, float, bool], None]


class GatewayError(Exception):
    """A venue answer that is not the order's state. The message is one line and never
    carries a secret or a signature."""


class Rejected(GatewayError):
    """The venue refused the request: nothing was done (the order does not exist there)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code
        self.message = message


class RateLimited(Rejected):
    """429/418 or the venue's rate-limit code: refused, and the venue wants us to wait."""

    def __init__(self, code: str, message: str, retry_after_s: float, banned: bool) -> None:
        super().__init__(code, message)
        self.retry_after_s = retry_after_s
        self.banned = banned


class ClockSkew(Rejected):
    """Refused for a timestamp outside the venue's receive window."""


class UnknownOutcome(GatewayError):
    """No answer that says what happened (timeout, connection lost, 5xx)."""


@dataclass(frozen=True, slots=True)
class VenueCredentials:
    """Resolved secrets for one venue; ``Secret`` never shows its value."""

    api_key: Secret
    api_secret: Secret
    passphrase: Secret | None = None


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One trade of one order, as the venue reported it."""

    trade_id: str
    price: int  # price units of the instrument
    size: int  # size units
    fee: int  # atoms of fee_asset (a rebate is negative)
    fee_asset: str


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's view of one order.

    ``status`` is ACKED while the order can still fill (new, partially filled and resting),
    else its final state. ``fills`` are the trades the reply carried (empty when the venue
    reports only totals; ``filled`` always holds the total). ``venue_status`` is the
    venue's own word for the state, kept for the journal and for tests."""

    client_id: str
    venue_order_id: str
    symbol: str
    side: Side
    price: int
    size: int
    status: OrderStatus
    filled: int = 0
    fills: tuple[VenueFill, ...] = ()
    reason: str = ""
    venue_status: str = ""

    @classmethod
    def acked(cls, order: Order, venue_order_id: str, venue_status: str) -> VenueOrder:
        """The venue took ``order`` (its placement reply): open, nothing known filled."""
        return cls(
            order.client_id,
            venue_order_id,
            order.instrument.symbol,
            order.side,
            order.price,
            order.size,
            OrderStatus.ACKED,
            venue_status=venue_status,
        )


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: int  # atoms
    locked: int = 0  # atoms held by resting orders

    @property
    def total(self) -> int:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class Position:
    """A futures position as the venue reports it (one-way mode).

    ``size`` is signed, in size units. ``entry_value`` is the venue's average entry price
    times the position in base atoms, in quote atoms with the size's sign (what a long
    cost, minus what a short received), rounded to the atom. The venue shows the entry
    price rounded, so ``entry_value`` is only known within ``entry_error`` atoms: |position
    in base| times one unit of the entry price's last shown decimal, rounded up, plus one
    atom for the rounding to the atom. Reconciliation takes it when the portfolio's own
    entry value (exact, from its fills) is further off than that."""

    size: int
    entry_value: int
    entry_error: int

    @classmethod
    def of(cls, inst: Instrument, size: int, entry_price: str, what: str) -> Position:
        """``size`` units of ``inst`` entered at the venue's ``entry_price`` text;
        GatewayError (one line, naming ``what``) when that is not a decimal."""
        try:
            price = Decimal(entry_price)
        except (InvalidOperation, TypeError):
            price = Decimal("NaN")
        if not price.is_finite() or price < 0:
            raise GatewayError(f"{what} {entry_price!r} is not a decimal")
        base = AtomScale.of(inst).base(size)
        num, den = price.as_integer_ratio()
        whole, rest = divmod(abs(base) * num, den)
        if 2 * rest >= den:
            whole += 1
        exponent = price.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked above
        unit_num, unit_den = Decimal(1).scaleb(exponent).as_integer_ratio()
        shown = -(-abs(base) * unit_num // unit_den)  # rounded up
        return cls(size, whole if base >= 0 else -whole, shown + 1)

    def __add__(self, other: Position) -> Position:
        """Two reports of one symbol (hedge-mode legs) as one position."""
        return Position(
            self.size + other.size,
            self.entry_value + other.entry_value,
            self.entry_error + other.entry_error,
        )


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def order_texts(order: Order) -> tuple[str, str]:
    """(size, price) of ``order`` as its instrument's exact decimal text, every decimal of
    the grid written: what a venue's order request carries."""
    inst = order.instrument
    return inst.size.format(order.size), inst.price.format(order.price)


def grid_units(inst: Instrument, text: str, what: str = "price") -> int:
    """Exact grid units of the venue's decimal ``text`` (GatewayError if off the grid)."""
    grid = inst.price if what == "price" else inst.size
    try:
        return grid.parse(text)
    except (ValueError, TypeError):
        raise GatewayError(f"{inst.name}: {what} {text!r} is not on the {grid.step} grid") from None


def _retry_after(headers: Mapping[str, str], default_s: float) -> float:
    text = headers.get("Retry-After", "")
    try:
        value = float(text)
    except ValueError:
        return default_s
    return value if value > 0 else default_s


_T = TypeVar("_T")


class _OnEntry(Generic[_T]):
    """A ``LiveGateway`` attribute that lives in its ``OrderEntry`` (the same name without
    the leading underscore)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name.lstrip("_")

    def __get__(self, gw: LiveGateway, owner: type | None = None) -> _T:
        value: _T = getattr(gw._entry, self.field)
        return value

    def __set__(self, gw: LiveGateway, value: _T) -> None:
        setattr(gw._entry, self.field, value)


# What the gateway has told its listener about one order, so nothing goes twice (compiled:
# the WebSocket submit path creates one per order).
_Tracked = Tracked


class LiveGateway(FeedHandler):
    """One venue's signed order entry. Subclasses fill in the venue's requests and replies.

    REST hooks (all required):

    * ``_rest_place(order) -> VenueOrder``: send the order; its reply as the venue's state
      (raise ``Rejected`` / ``RateLimited`` / ``ClockSkew`` / ``UnknownOutcome``).
    * ``_rest_query(order_or_client_id) -> VenueOrder | None``: None when the venue says it
      has no such order.
    * ``_rest_cancel(client_id, symbol) -> VenueOrder | None``.
    * ``_rest_open_orders() -> list[VenueOrder]``, ``_rest_balances() -> dict[str, Balance]``,
      ``_rest_server_time_ms() -> int``; ``_rest_positions() -> dict[str, Position]`` for
      futures.

    WebSocket hooks (optional; ``ws_url`` set and ``_ws_templates`` implemented):
    ``_ws_connected_frames()`` (login); the order request as compiled templates with its
    per-order rules (``_ws_templates(inst, side, tif) -> _wire.WsRequest``, rendered in C,
    or None for orders the venue takes over REST only; ``_ws_key()`` for a ``{sig}`` slot);
    and
    ``_ws_message(payload)``, which calls ``_ws_ready()`` once a login is confirmed and
    ``_ws_answer(req_id, state_or_error)`` for each order reply.
    """

    kind: ClassVar[str] = ""  # config VenueKind value this gateway serves
    supports_fok: ClassVar[bool] = True  # the venue has fill-or-kill limit orders
    retry_budget: ClassVar[int] = 2  # re-sends of one order whose outcome is not known
    follow_interval_s: ClassVar[float] = 0.05  # query cadence for an acked, not final order
    follow_deadline_s: ClassVar[float] = 10.0  # then the executor's UNKNOWN path takes over
    retry_pause_s: ClassVar[float] = 0.05  # times the attempt number, before a re-send
    default_backoff_s: ClassVar[float] = 1.0  # a 429 without Retry-After
    # Finished orders whose record is kept (late reports, re-send checks); older ones are
    # forgotten, as the executor forgets settled arbs: a daemon runs for weeks.
    keep_done: ClassVar[int] = 10_000

    def __init__(
        self,
        venue: str,
        instruments: Iterable[Instrument],
        credentials: VenueCredentials,
        *,
        rest_url: str,
        ws_url: str | None = None,
        recv_window_ms: int = 5000,
        timeout_s: float = 2.0,
        on_rate_limit: RateLimitHook | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        wall: Callable[[], int] = time.time_ns,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self.venue = venue
        self.instruments: dict[str, Instrument] = {}
        for inst in instruments:
            if inst.venue != venue:
                raise ValueError(f"{inst.name} is not a {venue} instrument")
            self.instruments[inst.symbol] = inst
        self.credentials = credentials
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = ws_url
        self.recv_window_ms = recv_window_ms
        self.on_rate_limit = on_rate_limit
        self.trace_configs = list(trace_configs)  # aiohttp request tracing (the bench)
        self.clock = clock
        self.wall = wall
        self.counters = GatewayCounters()
        self._events: OrderEvents = NoEvents()
        self._tracked: dict[str, _Tracked] = {}
        self._ws_pending: dict[str, str] = {}  # request id -> client id
        self._done: deque[str] = deque()  # client ids of finished orders, oldest first
        # symbol -> its requests by (side, time in force), built on first use
        self._templates: dict[str, list[Any]] = {}
        # Also holds what submit reads per order: the WebSocket login flag, the 429/418
        # wait, the clock offset and the timeout (the properties of those names).
        self._entry = OrderEntry(
            self,
            self.instruments,
            self._tracked,
            self._ws_pending,
            self._templates,
            clock,
            wall,
            OrderWire(self._ws_key()),
            self.counters,
        )
        # The orders.Gateway ``submit`` is the entry's own, bound here: a Python method
        # around it would put a frame between the executor and C on every leg.
        self.submit: Callable[[Order], int] = self._entry.submit
        # The executor's: ``submit`` up to the write, with no effect (keeps the path warm);
        # None when orders only ever go over REST.
        self.warm: Callable[[Order], bool] | None = (
            self._entry.warm if ws_url is not None and self._uses_ws() else None
        )
        self.timeout_s = timeout_s
        self._sweeper: asyncio.TimerHandle | None = None  # WS requests past their deadline
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ws: WsFeed | None = None
        self._ws_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the session, sync the clock, connect the order WebSocket (if any)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0),
                trace_configs=self.trace_configs or None,
            )
        await self.sync_time()
        if self.ws_url is not None and self._uses_ws():
            self._ws = WsFeed(self.ws_url, self, name=f"{self.venue}-orders", **self._ws_options())
            self._entry.ws = self._ws
            self._ws_task = asyncio.create_task(self._ws.run(), name=f"{self.venue}-order-ws")
            self._schedule_sweep()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._ws is not None:
            await self._ws.stop()
        if self._ws_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ws_task
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> LiveGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def blocked_for_s(self) -> float:
        """Seconds left of the rate-limit wait the venue asked for (0: sending)."""
        return max(0, self._blocked_until_ns - self.clock()) / 1e9

    @property
    def ws_ready(self) -> bool:
        return self._ws_ok and self._ws is not None and self._ws.connected

    # Kept in the compiled entry, where ``submit`` reads them per order.
    _ws_ok = _OnEntry[bool]()  # logged in (or no login needed)
    _blocked_until_ns = _OnEntry[int]()  # after a 429/418: requests refused until then
    offset_ms = _OnEntry[int]()  # the venue's clock minus ours, in ms, from the last sync

    @property
    def timeout_s(self) -> float:
        """How long a request may take: REST calls, and a WebSocket order's answer."""
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"timeout_s must be positive, got {value}")
        self._timeout_s = value
        self._entry.timeout_ns = int(value * 1e9)

    # -- the orders.Gateway contract ---------------------------------------------------------

    def set_listener(self, events: OrderEvents) -> None:
        self._events = events

    # ``submit`` (orders.Gateway) and ``warm`` are ``_wire.OrderEntry``'s, bound in
    # ``__init__``.

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("submit", "warm"):
            if name in vars(cls):
                # The bound entry would hide it: venue rules go in the hooks instead.
                raise TypeError(f"{cls.__name__} must not define {name}: use _ws_templates")

    def _rest_submit(self, tracked: _Tracked) -> int:
        """``submit``'s REST path (no WebSocket, not logged in, a 429/418 wait running, or
        the venue's ``_ws_templates`` said REST): the placement runs as a task."""
        sent = self.clock()
        self._spawn(self._place(tracked, 0), tracked)
        return sent

    async def query(self, client_id: str) -> Order | None:
        """The venue's state of ``client_id`` as an ``Order`` (None: the venue has none).

        A placement still in flight here is waited for first: the venue may not know the
        order *yet*, and "unknown to the venue" would be final for the executor."""
        tracked = self._tracked.get(client_id)
        if tracked is not None:
            await self._placed(tracked)
        self.counters.queries += 1
        state = await self._query_venue(tracked.order if tracked is not None else client_id)
        if state is None:
            return None
        if state.filled > sum(f.size for f in state.fills):
            probe = tracked.order if tracked is not None else None
            if probe is None:
                inst = self.instruments[state.symbol]
                probe = Order(client_id, "", inst, state.side, state.price, state.size)
            state = replace(state, fills=tuple(await self._rest_fills(probe, state)))
        base = tracked.order if tracked is not None else None
        if base is None:
            inst = self.instruments[state.symbol]
            base = Order(client_id, "", inst, state.side, state.price, state.size)
        now = self.clock()
        copy = Order(
            client_id,
            base.arb_id,
            base.instrument,
            base.side,
            base.price,
            base.size,
            base.tif,
            base.purpose,
            status=state.status,
            venue_order_id=state.venue_order_id,
            reason=state.reason,
        )
        for f in state.fills:
            copy.record(self._fill(client_id, f, now))
        copy.filled = state.filled
        return copy

    async def cancel(self, client_id: str, symbol: str) -> VenueOrder | None:
        """Cancel a resting order by client id; its state after (None: no such order)."""
        return await self._rest_cancel(client_id, symbol)

    async def open_orders(self) -> list[VenueOrder]:
        return await self._rest_open_orders()

    async def balances(self) -> dict[str, Balance]:
        return await self._rest_balances()

    async def positions(self) -> dict[str, Position]:
        """The position per symbol with its entry value (futures); spot venues have none."""
        return await self._rest_positions()

    async def sync_time(self) -> int:
        """Measure the venue's clock against ours (midpoint of the round trip); returns and
        keeps the offset in ms, which every signed timestamp adds."""
        before = self.wall()
        server_ms = await self._rest_server_time_ms()
        after = self.wall()
        self.offset_ms = server_ms - (before + after) // 2_000_000
        return self.offset_ms

    def timestamp_ms(self) -> int:
        """Now on the venue's clock, in ms (what signed requests carry)."""
        return self.wall() // 1_000_000 + self.offset_ms

    # -- order life cycle --------------------------------------------------------------------

    async def _placed(self, tracked: _Tracked) -> None:
        """Wait, for at most twice the request timeout, while ``tracked``'s placement is in
        flight: a WebSocket request neither answered nor timed out, then a REST attempt."""
        deadline = self.clock() + int(self.timeout_s * 2e9)
        while tracked.ws_deadline and self.clock() < deadline:
            await asyncio.sleep(min(0.005, self.timeout_s / 10))
        task = tracked.task
        left_s = (deadline - self.clock()) / 1e9
        if task is not None and not task.done() and left_s > 0:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), left_s)

    def _spawn(self, coro: Any, tracked: _Tracked | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if tracked is not None:
            tracked.task = task

    async def _place(self, tracked: _Tracked, attempt: int) -> None:
        order = tracked.order
        while True:
            try:
                if self.clock() < self._blocked_until_ns:
                    raise RateLimited("", "rate limited: waiting out the venue's ban", 0.0, False)
                self.counters.rest_sent += 1
                state = await self._rest_place(order)
            except ClockSkew as exc:
                self._reject(tracked, exc)
                self.counters.clock_resyncs += 1
                with contextlib.suppress(GatewayError, aiohttp.ClientError, TimeoutError):
                    await self.sync_time()
                return
            except Rejected as exc:
                if self._is_duplicate(exc) and attempt > 0:
                    # Our earlier attempt did reach the venue: ask it what became of it.
                    await self._follow(tracked)
                    return
                self._reject(tracked, exc)
                return
            except UnknownOutcome:
                if attempt < self.retry_budget:
                    attempt += 1
                    self.counters.retries += 1
                    await asyncio.sleep(self.retry_pause_s * attempt)
                    continue
                self.counters.unknown += 1
                return  # the executor's timeout makes it UNKNOWN and queries
            except GatewayError:
                # An answer we cannot read says nothing about the order: the same as none.
                self.counters.unknown += 1
                return
            await self._report_complete(tracked, state)
            if not tracked.done:
                await self._follow(tracked)
            return

    async def _query_venue(self, order: Order | str) -> VenueOrder | None:
        """``_rest_query``, healing a refused timestamp once. A clock that jumps while an
        order is out (after its placement went through) refuses every query about it, and
        only a resync ends that: without one the order would stay unknown for good."""
        try:
            return await self._rest_query(order)
        except ClockSkew:
            self.counters.clock_resyncs += 1
            await self.sync_time()
            return await self._rest_query(order)

    async def _follow(self, tracked: _Tracked) -> None:
        """Query an acked order until the venue gives its final state, for at most
        ``follow_deadline_s``: past that, the executor's timeout and queries take over."""
        deadline = self.clock() + int(self.follow_deadline_s * 1e9)
        while not tracked.done and self.clock() < deadline:
            await asyncio.sleep(self.follow_interval_s)
            try:
                state = await self._query_venue(tracked.order)
            except RateLimited as exc:
                await asyncio.sleep(max(self.follow_interval_s, exc.retry_after_s))
                continue
            except (GatewayError, aiohttp.ClientError, TimeoutError):
                continue
            if state is None:
                continue  # not visible yet; the executor's own query decides in the end
            await self._report_complete(tracked, state)

    def _schedule_sweep(self) -> None:
        # A quarter of the timeout: a lost answer goes to REST 1 to 1.25 timeouts after
        # its request, for one timer per gateway instead of one per order.
        period = max(0.001, self.timeout_s / 4)
        self._sweeper = asyncio.get_running_loop().call_later(period, self._sweep)

    def _sweep(self) -> None:
        """Every WebSocket request past its deadline with no answer goes to REST."""
        now = self.clock()
        late = [
            (req_id, tracked)
            for req_id, client_id in self._ws_pending.items()
            if 0 < (tracked := self._tracked[client_id]).ws_deadline <= now
        ]
        for req_id, tracked in late:
            self._ws_timeout(tracked, req_id)
        self._schedule_sweep()

    def _ws_timeout(self, tracked: _Tracked, req_id: str) -> None:
        tracked.ws_deadline = 0
        if self._ws_pending.pop(req_id, None) is None or tracked.done:
            return
        # No answer on the socket: same client id over REST (the venue refuses a
        # duplicate, and the duplicate path then asks what became of the first).
        self._spawn(self._place(tracked, 1), tracked)

    def _ws_answer(self, req_id: str, answer: VenueOrder | GatewayError) -> None:
        """A venue's reply to the order sent as ``req_id`` on the WebSocket."""
        client_id = self._ws_pending.pop(req_id, None)
        if client_id is None:
            return
        tracked = self._tracked[client_id]
        tracked.ws_deadline = 0
        if isinstance(answer, VenueOrder):
            self._spawn(self._answered(tracked, answer))
        elif isinstance(answer, UnknownOutcome):
            # Followed by ``query`` like any placement in flight.
            self._spawn(self._place(tracked, 1), tracked)
        elif isinstance(answer, ClockSkew):
            self._reject(tracked, answer)
            self.counters.clock_resyncs += 1
            self._spawn(self.sync_time())
        elif isinstance(answer, Rejected):
            self._reject(tracked, answer)
        else:
            self._spawn(self._follow(tracked))

    def _usage_exhausted(self, wait_s: float) -> None:
        """The venue's usage counters (reply headers, WS rate-limit fields) say its limit
        is reached: stop sending until it resets, and tell the rate gates, rather than
        learn it from the next order's 429."""
        if wait_s <= 0:
            return
        until = self.clock() + int(wait_s * 1e9)
        if until <= self._blocked_until_ns:
            return
        self._blocked_until_ns = until
        self.counters.usage_pauses += 1
        if self.on_rate_limit is not None:
            self.on_rate_limit(self.venue, wait_s, False)

    def _is_duplicate(self, exc: Rejected) -> bool:
        """Whether ``exc`` is the venue's "client order id already used" (subclasses)."""
        return False

    def _reject(self, tracked: _Tracked, exc: Rejected) -> None:
        if isinstance(exc, RateLimited):
            self.counters.rate_limited += 1
            if exc.retry_after_s > 0:
                self._blocked_until_ns = max(
                    self._blocked_until_ns, self.clock() + int(exc.retry_after_s * 1e9)
                )
                if self.on_rate_limit is not None:
                    self.on_rate_limit(self.venue, exc.retry_after_s, exc.banned)
        self.counters.rejects += 1
        code = exc.code or type(exc).__name__
        self.counters.reject_codes[code] = self.counters.reject_codes.get(code, 0) + 1
        if tracked.done:
            return
        self._finish(tracked)
        self._events.on_done(tracked.order, OrderStatus.REJECTED, str(exc), self.clock())

    def _finish(self, tracked: _Tracked) -> None:
        """``tracked`` reached its final state; past ``keep_done`` finished orders, the
        oldest is forgotten."""
        tracked.done = True
        done = self._done
        done.append(tracked.order.client_id)
        while len(done) > self.keep_done:
            self._forget(done.popleft())

    def _forget(self, client_id: str) -> None:
        """Drop what is kept about a finished order: its record and any WebSocket request
        of it still unanswered (venues drop their own per-order records too). A report
        about it after this is ignored; ``query`` still asks the venue."""
        self._tracked.pop(client_id, None)
        for req_id in [r for r, c in self._ws_pending.items() if c == client_id]:
            del self._ws_pending[req_id]

    def _fill(self, client_id: str, f: VenueFill, now: int) -> Fill:
        return Fill(client_id, f.price, f.size, f.fee, f.fee_asset, now, trade_id=f.trade_id)

    def _report(self, tracked: _Tracked, state: VenueOrder) -> None:
        """Tell the listener what ``state`` adds to what it already heard."""
        if tracked.done:
            return
        order, events, now = tracked.order, self._events, self.clock()
        if state.venue_order_id:
            tracked.venue_order_id = state.venue_order_id
        if state.status is OrderStatus.REJECTED:
            self._finish(tracked)
            events.on_done(order, OrderStatus.REJECTED, state.reason or "rejected", now)
            return
        if not tracked.acked:
            tracked.acked = True
            events.on_ack(order, now)
        for f in state.fills:
            if f.trade_id not in tracked.trades:
                tracked.trades.add(f.trade_id)
                events.on_fill(order, self._fill(order.client_id, f, now))
        if state.status.done:
            self._finish(tracked)
            events.on_done(order, state.status, state.reason, now)

    async def _answered(self, tracked: _Tracked, state: VenueOrder) -> None:
        await self._report_complete(tracked, state)
        if not tracked.done:
            await self._follow(tracked)

    async def _report_complete(self, tracked: _Tracked, state: VenueOrder) -> None:
        """``_report``, after fetching the trades of a reply that gave only totals (fills
        must reach the listener before the final state, each with its own price)."""
        if state.filled > sum(f.size for f in state.fills):
            try:
                fills = await self._rest_fills(tracked.order, state)
            except (GatewayError, aiohttp.ClientError, TimeoutError):
                # Report what is known without the final state; following (or the
                # executor's query) completes it.
                self._report(tracked, replace(state, status=OrderStatus.ACKED))
                return
            state = replace(state, fills=tuple(fills))
            if state.filled > sum(f.size for f in fills):
                self._report(tracked, replace(state, status=OrderStatus.ACKED))
                return
        self._report(tracked, state)

    # -- HTTP --------------------------------------------------------------------------------

    async def _http(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """One request; raises ``RateLimited`` on 429/418 and ``UnknownOutcome`` when the
        outcome is not known (no reply, 5xx). Other statuses are returned for the venue's
        parser, which knows its error bodies."""
        if self._session is None:
            raise UnknownOutcome(f"{self.venue}: gateway not started")
        url = f"{self.rest_url}{path}" + (f"?{query}" if query else "")
        try:
            async with self._session.request(
                method, url, data=body.encode() if body else None, headers=headers
            ) as resp:
                data = await resp.read()
                status, rh = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnknownOutcome(f"{self.venue} {method} {path}: {type(exc).__name__}") from None
        if status in (429, 418):
            wait = _retry_after(rh, self.default_backoff_s)
            raise RateLimited(
                str(status), f"{self.venue} {path}: HTTP {status}", wait, status == 418
            )
        if status >= 500:
            raise UnknownOutcome(f"{self.venue} {method} {path}: HTTP {status}")
        return HttpReply(status, dict(rh), data)

    # -- the WebSocket side (FeedHandler for the order connection) ----------------------------

    def on_connected(self) -> list[bytes]:
        self._ws_ok = False
        self._entry.transport = self._ws.direct_transport if self._ws is not None else None
        frames = self._ws_connected_frames()
        if not frames:
            self._ws_ok = True
        return frames

    def on_frame(self, payload: bytes, recv_mono_ns: int, recv_wall_ns: int) -> None:
        self._ws_message(payload)

    def on_disconnected(self) -> None:
        self._ws_ok = False
        self._entry.transport = None
        # Orders sent on the lost socket: their answers will not come; the sweep takes
        # them to REST once their deadline has passed.

    def _ws_ready(self) -> None:
        self._ws_ok = True

    def _uses_ws(self) -> bool:
        return type(self)._ws_templates is not LiveGateway._ws_templates

    # -- venue hooks -------------------------------------------------------------------------

    async def _rest_place(self, order: Order) -> VenueOrder:
        raise NotImplementedError

    async def _rest_query(self, order: Order | str) -> VenueOrder | None:
        raise NotImplementedError

    async def _rest_fills(self, order: Order, state: VenueOrder) -> list[VenueFill]:
        """The trades of a finished order whose reply carried only totals."""
        raise NotImplementedError

    async def _rest_cancel(self, client_id: str, symbol: str) -> VenueOrder | None:
        raise NotImplementedError

    async def _rest_open_orders(self) -> list[VenueOrder]:
        raise NotImplementedError

    async def _rest_balances(self) -> dict[str, Balance]:
        raise NotImplementedError

    async def _rest_positions(self) -> dict[str, Position]:
        return {}

    async def _rest_server_time_ms(self) -> int:
        raise NotImplementedError

    def _ws_options(self) -> dict[str, Any]:
        """``WsFeed`` keyword arguments for the order connection (a venue's heartbeat)."""
        return {}

    def _ws_connected_frames(self) -> list[bytes]:
        return []

    def _ws_templates(self, inst: Instrument, side: Side, tif: TimeInForce) -> WsRequest | None:
        """The venue's order request for ``inst``/``side``/``tif`` as templates with its
        per-order rules (``_wire.WsRequest``), built once and kept until cleared; None:
        such orders go over REST."""
        raise NotImplementedError

    def _ws_key(self) -> bytes | None:
        """The HMAC-SHA256 key of templates with a ``{sig}`` slot (None: none signed)."""
        return None

    def _ws_message(self, payload: bytes) -> None:
        pass
