"""RestClient and TokenBucket against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from arbengine.venues.rest import RestClient, RestError, TokenBucket
from arbengine.venues.ws import Backoff


class Script:
    """Replies the test queues up, one per request; then 200 with a depth body."""

    def __init__(self) -> None:
        self.replies: list[web.StreamResponse | float] = []
        self.requests: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, float):  # a slow venue
                await asyncio.sleep(reply)
            else:
                return reply
        return web.Response(body=b'{"lastUpdateId":1,"bids":[],"asks":[]}')


@pytest.fixture
async def venue() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_get("/api/v3/depth", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield script, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def client(url: str, **kw: float) -> RestClient:
    return RestClient(
        url,
        limiter=TokenBucket(capacity=100, rate=1_000),
        backoff=Backoff(base_s=0.001, cap_s=0.01, rng=random.Random(3)),
        timeout_s=kw.get("timeout_s", 2.0),
        max_attempts=int(kw.get("max_attempts", 4)),
    )


async def test_get_returns_the_raw_body(venue: tuple[Script, str]) -> None:
    script, url = venue
    rest = client(url)
    body = await rest.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "1000"}, weight=10)
    assert body == b'{"lastUpdateId":1,"bids":[],"asks":[]}'
    assert script.requests == ["/api/v3/depth?symbol=BTCUSDT&limit=1000"]
    await rest.close()


async def test_429_is_obeyed_then_retried(venue: tuple[Script, str]) -> None:
    script, url = venue
    script.replies = [web.Response(status=429, headers={"Retry-After": "0.2"})]
    rest = client(url)
    loop = asyncio.get_running_loop()
    start = loop.time()
    body = await rest.get("/api/v3/depth")
    assert body.startswith(b'{"lastUpdateId"')
    assert loop.time() - start >= 0.19  # waited as long as the venue asked
    assert (rest.counters.throttled, rest.counters.retries) == (1, 1)
    await rest.close()


async def test_5xx_and_timeouts_are_retried_then_given_up(venue: tuple[Script, str]) -> None:
    script, url = venue
    script.replies = [web.Response(status=502), 0.5]  # a bad gateway, then a slow reply
    rest = client(url, timeout_s=0.1)
    assert (await rest.get("/api/v3/depth")).startswith(b"{")
    assert (rest.counters.server_errors, rest.counters.timeouts) == (1, 1)
    script.replies = [web.Response(status=503) for _ in range(3)]
    rest2 = client(url, max_attempts=3)
    with pytest.raises(
        RestError, match=r"GET /api/v3/depth: gave up after 3 attempts; last: HTTP 503"
    ):
        await rest2.get("/api/v3/depth")
    await rest.close()
    await rest2.close()


async def test_client_errors_fail_at_once_with_one_line(venue: tuple[Script, str]) -> None:
    script, url = venue
    script.replies = [web.Response(status=400, body=b'{"code":-1121,\n"msg":"Invalid symbol."}')]
    rest = client(url)
    with pytest.raises(RestError) as info:
        await rest.get("/api/v3/depth", {"symbol": "NOPE"})
    message = str(info.value)
    assert message.startswith("GET /api/v3/depth?symbol=NOPE: HTTP 400:")
    assert "Invalid symbol." in message and "\n" not in message
    assert len(script.requests) == 1  # no retry for a 4xx other than 418/429
    await rest.close()


async def test_token_bucket_spaces_requests_by_weight() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(capacity=10, rate=5, clock=lambda: now[0], sleep=fake_sleep)
    await bucket.acquire(10)  # the full burst at once
    assert slept == []
    await bucket.acquire(5)  # needs 5 tokens at 5/s
    assert slept == [pytest.approx(1.0)]
    bucket.block(3.0)  # the venue said "retry after 3 s": then refill from empty
    await bucket.acquire(1)
    assert sum(slept) == pytest.approx(1.0 + 3.0 + 0.2)
    with pytest.raises(ValueError, match="exceeds the bucket capacity"):
        await bucket.acquire(11)
