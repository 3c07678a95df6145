"""REST for market data: one keep-alive aiohttp session per venue, rate-limited and retried.

Snapshots are fetched when a book (re)syncs, so a burst of resyncs must not get the IP
banned: every request takes its documented weight from a token bucket sized from the
venue's limits, 429/418 replies stop all requests to that venue for the time the venue asks
(Retry-After), and timeouts and 5xx are retried with capped backoff. Bodies are returned as
raw bytes for the compiled parsers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from arbengine.venues.errors import VenueError
from arbengine.venues.ws import Backoff


class RestError(VenueError):
    """A REST request that failed for good; the message is one line naming the request."""


class TokenBucket:
    """``capacity`` tokens refilled at ``rate`` per second; a request takes its weight.

    Waiting (rather than failing) is right for snapshot fetches: the book is not LIVE anyway
    and the caller just wants the snapshot as soon as the venue allows.
    """

    def __init__(
        self,
        capacity: float,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if capacity <= 0 or rate <= 0:
            raise ValueError(
                f"token bucket needs capacity > 0 and rate > 0, got {capacity}, {rate}"
            )
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self.blocked_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def block(self, seconds: float) -> None:
        """The venue said stop (429/418): no request before ``seconds`` from now, and the
        bucket refills from empty after that rather than bursting the moment it ends."""
        self.blocked_until = max(self.blocked_until, self._clock() + seconds)
        self.tokens = 0.0
        self._stamp = max(self._stamp, self.blocked_until)

    async def acquire(self, weight: float = 1.0) -> None:
        if weight > self.capacity:
            raise ValueError(f"request weight {weight} exceeds the bucket capacity {self.capacity}")
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                if now < self.blocked_until:
                    await self._sleep(self.blocked_until - now)
                    continue
                self._refill()
                if self.tokens >= weight:
                    self.tokens -= weight
                    return
                await self._sleep((weight - self.tokens) / self.rate)


@dataclass
class RestCounters:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    timeouts: int = 0
    server_errors: int = 0
    failures: int = 0


class RestClient:
    """GETs against one venue's REST API over a single keep-alive session."""

    def __init__(
        self,
        base_url: str,
        *,
        limiter: TokenBucket,
        timeout_s: float = 5.0,
        max_attempts: int = 4,
        backoff: Backoff | None = None,
        default_retry_after_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff(base_s=0.2, cap_s=5.0)
        self.default_retry_after_s = default_retry_after_s
        self.headers = dict(headers or {})
        self.counters = RestCounters()
        self._session: aiohttp.ClientSession | None = None

    async def _session_open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                headers=self.headers,
                connector=aiohttp.TCPConnector(limit_per_host=4, keepalive_timeout=60),
            )
        return self._session

    async def get(
        self, path: str, params: Mapping[str, str] | None = None, *, weight: float = 1.0
    ) -> bytes:
        """The raw body of a 200 reply; RestError (one line) when all attempts fail."""
        session = await self._session_open()
        url = f"{self.base_url}{path}"
        what = f"GET {path}" + (
            f"?{'&'.join(f'{k}={v}' for k, v in params.items())}" if params else ""
        )
        self.backoff.reset()
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            await self.limiter.acquire(weight)
            self.counters.requests += 1
            try:
                async with session.get(url, params=params) as reply:
                    body = await reply.read()
                    if reply.status == 200:
                        return body
                    if reply.status in (418, 429):
                        # Rate limited (429) or banned for ignoring it (418): obey, then retry.
                        self.counters.throttled += 1
                        wait = _retry_after(
                            reply.headers.get("Retry-After"), self.default_retry_after_s
                        )
                        self.limiter.block(wait)
                        last = f"HTTP {reply.status}, retry after {wait:g} s"
                    elif reply.status >= 500:
                        self.counters.server_errors += 1
                        last = f"HTTP {reply.status}"
                    else:
                        self.counters.failures += 1
                        raise RestError(f"{what}: HTTP {reply.status}: {_excerpt(body)}")
            except TimeoutError:
                self.counters.timeouts += 1
                last = f"timed out after {self.timeout.total:g} s"
            except aiohttp.ClientError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_attempts:
                self.counters.retries += 1
                await asyncio.sleep(self.backoff.next_delay())
        self.counters.failures += 1
        raise RestError(f"{what}: gave up after {self.max_attempts} attempts; last: {last}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if seconds >= 0 else default


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", "replace").replace("\n", " ").strip()
    return text + ("..." if len(body) > limit else "")
