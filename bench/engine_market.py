"""The synthetic two-venue market of the engine benchmark: books, update pools, wire frames.

``pairs`` pairs, each one Binance spot book (``C07USDT``) and one OKX book (``C07-USDT``) of
the same synthetic base asset ``C07``, quoted around the same mid on the same grids (tick
0.01, lot 0.001; the mid is ~100, so a tick is ~1 bp). Every book starts with ``depth``
levels per side on consecutive ticks: bids at mid-1 .. mid-depth, asks at mid+1 ..
mid+depth. Background updates never touch a price on the wrong side of the mid, so no book
is ever crossed and no cross-venue spread is ever profitable (the two venues' best bid and
best ask are always at least 2 ticks apart, and the fees are 15 bps): only an injected
dislocation makes an arb.

Updates. Each book has a pool of ``bodies`` update bodies drawn once from a seeded model:
1..``max_levels`` level changes (uniform), each on a random side at a rank from the best
drawn from a mixture (80% exponential mean 3, 15% exponential mean 30, 5% uniform over the
depth), with a new absolute size (10% deletes, else 1..5,000 lots). The pool is sent in
order and cycled. Because every change sets an absolute size, sending the pool twice leaves
the same book as sending it once, so the true book after ``n`` bodies is the start book,
plus the whole pool when ``n`` >= the pool size, plus the first ``n % pool`` bodies
(``truth``). That is what lets a generator send millions of frames it built up front and the
engine side still check every book exactly at the end.

Frames are the venues' own wire (Binance combined-stream ``depthUpdate``; OKX v5 ``books``
``update``), prebuilt except for the event time and the two sequence ids, which are patched
in at send time (fixed width, 13 digits, so the frame length and the WebSocket header are
known up front).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from arbengine._core.instrument import Instrument

TICK = "0.01"
LOT = "0.001"
QUOTE = "USDT"
FEE_BPS = Decimal("7.5")
ID0 = 10**12  # first sequence id of every book: 13 digits, fixed width until 10^13
MAX_SIZE_LOTS = 5_000
VENUES = ("binance", "okx")

Level = tuple[int, int]  # (price ticks, size lots); size 0 deletes


@dataclass(frozen=True)
class MarketConfig:
    pairs: int = 20
    depth: int = 100  # levels per side in the start book
    max_levels: int = 10  # level changes per update: uniform 1..max_levels
    bodies: int = 1024  # update bodies per book, cycled
    seed: int = 20261122
    shift_ticks: int = 40  # a dislocation moves one book's touch this far through the mid
    inject_lots: int = 1_000  # size of the dislocated level (1.0 base)

    def __post_init__(self) -> None:
        if not 1 <= self.pairs <= 100:
            raise ValueError("pairs must be 1..100")
        if self.depth < 2 or self.shift_ticks < 2 or self.max_levels < 1 or self.bodies < 1:
            raise ValueError("depth and shift_ticks must be >= 2, max_levels and bodies >= 1")


@dataclass(frozen=True)
class Template:
    """One update body as a frame: ``pre + ts + mid + id1 + sep + id2 + post``.

    ``header`` is the server-to-client WebSocket frame header for that length (unmasked
    text frame). Binance: id1 = U, id2 = u = U + n - 1. OKX: id1 = prevSeqId, id2 = seqId
    = prevSeqId + n."""

    header: bytes
    pre: bytes
    mid: bytes
    sep: bytes
    post: bytes
    n: int  # level changes


@dataclass
class BookSpec:
    index: int
    pair: int
    venue: str
    symbol: str
    base: str
    mid: int
    bids: dict[int, int]
    asks: dict[int, int]
    bodies: list[tuple[tuple[Level, ...], tuple[Level, ...]]] = field(default_factory=list)
    templates: list[Template] = field(default_factory=list)

    def instrument(self) -> Instrument:
        return Instrument(self.venue, self.symbol, self.base, QUOTE, TICK, LOT)


def ws_header(length: int) -> bytes:
    """Header of an unmasked, final text frame carrying ``length`` payload bytes."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65_536:
        return bytes((0x81, 126)) + length.to_bytes(2, "big")
    return bytes((0x81, 127)) + length.to_bytes(8, "big")


def ws_frame(payload: bytes) -> bytes:
    return ws_header(len(payload)) + payload


# --- text ----------------------------------------------------------------------------------


def _binance_px(p: int) -> str:
    return f"{p // 100}.{p % 100:02d}000000"


def _binance_sz(q: int) -> str:
    return f"{q // 1000}.{q % 1000:03d}00000"


def _trim(units: int, decimals: int) -> str:
    whole, frac = divmod(units, 10**decimals)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0")


def binance_levels(levels: Iterable[Level]) -> list[list[str]]:
    return [[_binance_px(p), _binance_sz(q)] for p, q in levels]


def okx_levels(levels: Iterable[Level]) -> list[list[str]]:
    # [price, size, "0", numOrders]; numOrders derived from the size (not modelled)
    return [[_trim(p, 2), _trim(q, 3), "0", str(1 + q % 7) if q else "0"] for p, q in levels]


def stream_name(symbol: str) -> str:
    return f"{symbol.lower()}@depth@100ms"


def _dumps(value: object) -> bytes:
    return orjson.dumps(value)


def binance_template(symbol: str, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> Template:
    pre = b'{"stream":"' + stream_name(symbol).encode() + b'","data":{"e":"depthUpdate","E":'
    mid = b',"s":"' + symbol.encode() + b'","U":'
    sep = b',"u":'
    post = b',"b":' + _dumps(binance_levels(bids)) + b',"a":' + _dumps(binance_levels(asks)) + b"}}"
    n = len(bids) + len(asks)
    return Template(
        ws_header(len(pre) + len(mid) + len(sep) + len(post) + 39), pre, mid, sep, post, n
    )


def okx_template(symbol: str, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> Template:
    pre = (
        b'{"arg":{"channel":"books","instId":"'
        + symbol.encode()
        + b'"},"action":"update","data":[{"asks":'
        + _dumps(okx_levels(asks))
        + b',"bids":'
        + _dumps(okx_levels(bids))
        + b',"ts":"'
    )
    mid = b'","checksum":0,"prevSeqId":'
    sep = b',"seqId":'
    post = b"}]}"
    n = len(bids) + len(asks)
    return Template(
        ws_header(len(pre) + len(mid) + len(sep) + len(post) + 39), pre, mid, sep, post, n
    )


def render(t: Template, ts_ms: int, id1: int, id2: int) -> bytes:
    """The payload (no WebSocket header) of ``t`` with its stamps filled in."""
    return b"".join((t.pre, b"%d" % ts_ms, t.mid, b"%d" % id1, t.sep, b"%d" % id2, t.post))


def ids_after(venue: str, last: int, n: int) -> tuple[int, int, int]:
    """(id1, id2, new last) for an n-change message after ``last`` (Binance: last u; OKX:
    last seqId)."""
    if venue == "binance":
        return last + 1, last + n, last + n
    return last, last + n, last + n


def okx_update(
    symbol: str, bids: Iterable[Level], asks: Iterable[Level], ts_ms: int, prev: int, seq: int
) -> bytes:
    """An OKX books update payload built on the spot (dislocations and their reversal)."""
    return _dumps(
        {
            "arg": {"channel": "books", "instId": symbol},
            "action": "update",
            "data": [
                {
                    "asks": okx_levels(asks),
                    "bids": okx_levels(bids),
                    "ts": str(ts_ms),
                    "checksum": 0,
                    "prevSeqId": prev,
                    "seqId": seq,
                }
            ],
        }
    )


def okx_snapshot(
    symbol: str, bids: dict[int, int], asks: dict[int, int], ts_ms: int, seq: int
) -> bytes:
    return _dumps(
        {
            "arg": {"channel": "books", "instId": symbol},
            "action": "snapshot",
            "data": [
                {
                    "asks": okx_levels(sorted(asks.items())),
                    "bids": okx_levels(sorted(bids.items(), reverse=True)),
                    "ts": str(ts_ms),
                    "checksum": 0,
                    "prevSeqId": -1,
                    "seqId": seq,
                }
            ],
        }
    )


def binance_rest(bids: dict[int, int], asks: dict[int, int], last_update_id: int) -> bytes:
    return _dumps(
        {
            "lastUpdateId": last_update_id,
            "bids": binance_levels(sorted(bids.items(), reverse=True)),
            "asks": binance_levels(sorted(asks.items())),
        }
    )


# --- the market ------------------------------------------------------------------------------


def _rank(rng: random.Random, depth: int) -> int:
    u = rng.random()
    if u < 0.80:
        r = int(rng.expovariate(1 / 3))
    elif u < 0.95:
        r = int(rng.expovariate(1 / 30))
    else:
        r = rng.randrange(depth)
    return min(r, depth - 1)


class Market:
    """Every book of the benchmark, with its start state and its update pool."""

    def __init__(self, config: MarketConfig) -> None:
        self.config = config
        self.books: list[BookSpec] = []
        for pair in range(config.pairs):
            base = f"C{pair:02d}"
            mid = 10_000 + 37 * pair
            for venue in VENUES:
                symbol = f"{base}{QUOTE}" if venue == "binance" else f"{base}-{QUOTE}"
                rng = random.Random(f"{config.seed}:{symbol}:{venue}")
                spec = BookSpec(
                    len(self.books),
                    pair,
                    venue,
                    symbol,
                    base,
                    mid,
                    {mid - 1 - i: rng.randint(1, MAX_SIZE_LOTS) for i in range(config.depth)},
                    {mid + 1 + i: rng.randint(1, MAX_SIZE_LOTS) for i in range(config.depth)},
                )
                make = binance_template if venue == "binance" else okx_template
                for _ in range(config.bodies):
                    bids: dict[int, int] = {}
                    asks: dict[int, int] = {}
                    for _ in range(rng.randint(1, config.max_levels)):
                        rank = _rank(rng, config.depth)
                        size = 0 if rng.random() < 0.10 else rng.randint(1, MAX_SIZE_LOTS)
                        if rng.random() < 0.5:
                            bids[mid - 1 - rank] = size
                        else:
                            asks[mid + 1 + rank] = size
                    body = (
                        tuple(sorted(bids.items(), reverse=True)),
                        tuple(sorted(asks.items())),
                    )
                    spec.bodies.append(body)
                    spec.templates.append(make(symbol, *body))
                self.books.append(spec)

    def pair_books(self, pair: int) -> tuple[BookSpec, BookSpec]:
        return self.books[2 * pair], self.books[2 * pair + 1]

    def venue_books(self, venue: str) -> list[BookSpec]:
        return [b for b in self.books if b.venue == venue]

    def truth(self, index: int, n: int) -> tuple[dict[int, int], dict[int, int]]:
        """Book ``index`` after its first ``n`` update bodies (deletes removed)."""
        spec = self.books[index]
        bids, asks = dict(spec.bids), dict(spec.asks)
        k = len(spec.bodies)
        applied = spec.bodies if n >= k else []
        for body_bids, body_asks in [*applied, *spec.bodies[: n % k]]:
            bids.update(body_bids)
            asks.update(body_asks)
        return _live(bids), _live(asks)


def _live(side: dict[int, int]) -> dict[int, int]:
    return {p: q for p, q in side.items() if q}


def apply_levels(side: dict[int, int], levels: Iterable[Level]) -> None:
    for p, q in levels:
        if q:
            side[p] = q
        else:
            side.pop(p, None)
