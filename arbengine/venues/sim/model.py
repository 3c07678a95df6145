"""The simulated venues' TRUE order books and the stochastic model that moves them.

Everything here is exact: prices are int ticks, sizes int lots, the shared fair price an int
in 10^-12 quote units, and text is made by integer formatting (no float, no Decimal rounding
on the hot path). Randomness (a ``random.Random`` per object, seeded) only chooses *which*
tick or lot count; it never becomes a price itself.

* ``DecimalText``: ticks/lots <-> the venue's decimal text ("61737.63000000" for Binance spot,
  trimmed "30244" / "0.08" for OKX). Independent of ``arbengine._core.fixed.Grid`` on purpose:
  the simulator is the exchange side and must not share the client's code.
* ``SimInstrument``: one symbol's grids, text style and model parameters; ``BINANCE_SPOT``,
  ``BINANCE_USDM`` and ``OKX_INSTRUMENTS`` hold ready-made ones.
* ``FairPrice`` / ``FairMarket``: a shared random walk per asset, advanced by elapsed time so
  that two venues reading it at the same instant see the same value. Cross-venue dislocations
  come from each venue's offset on top of it.
* ``TrueBook``: the book itself, plus text views (``BookSnapshot``) for tests and snapshots.
* ``BookModel``: per-tick changes around the fair price (mid walk, levels concentrated near the
  top, deletes, new best levels, never crossed), with injected and random dislocations.
* ``ReplaySource``: drives a ``TrueBook`` from recorded change batches instead of the model.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Literal

__all__ = [
    "ASK",
    "BID",
    "BINANCE_SPOT",
    "BINANCE_USDM",
    "FAIR_SCALE",
    "OKX_INSTRUMENTS",
    "BookModel",
    "BookSnapshot",
    "Changes",
    "DecimalText",
    "FairMarket",
    "FairPrice",
    "ModelConfig",
    "ReplaySource",
    "Side",
    "SimInstrument",
    "TextChange",
    "TrueBook",
    "crossed_levels",
]

Side = Literal["bid", "ask"]
BID: Side = "bid"
ASK: Side = "ask"

# One change as the venues' wire shows it: (side, price text, absolute size text); a zero
# size deletes the level. Also the input format of ``ReplaySource``.
TextChange = tuple[Side, str, str]

FAIR_SCALE = 10**12  # fair prices are ints in 10^-12 quote units: finer than any tick
_BPS = 10_000


class DecimalText:
    """Units of a decimal step (tick or lot) <-> venue text, exactly.

    ``decimals=None`` trims trailing zeros the OKX way ("30244", "0.08"); an int pads to that
    many decimals the Binance way ("61737.63000000", deletes as "0.00000000").
    """

    def __init__(self, step: str, decimals: int | None) -> None:
        try:
            value = Decimal(step)
        except InvalidOperation:
            raise ValueError(f"step {step!r} is not a decimal") from None
        if not value.is_finite() or value <= 0:
            raise ValueError(f"step {step!r} must be a positive decimal")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked above
        self.step = step
        self.scale = max(0, -exponent)
        self.mantissa = int(value.scaleb(self.scale))  # step == mantissa * 10^-scale
        if decimals is not None and decimals < self.scale:
            raise ValueError(f"{decimals} decimals cannot show step {step}")
        self.decimals = decimals
        self._digits = self.scale if decimals is None else decimals
        self._pow = 10**self._digits
        self._pad = 10 ** (self._digits - self.scale)

    def format(self, units: int) -> str:
        if units < 0:
            raise ValueError(f"negative units {units}")
        whole, frac = divmod(units * self.mantissa * self._pad, self._pow)
        if self._digits == 0:
            return str(whole)
        text = str(frac).rjust(self._digits, "0")
        if self.decimals is None:
            text = text.rstrip("0")
            if not text:
                return str(whole)
        return f"{whole}.{text}"

    def parse(self, text: str) -> int:
        """Units for ``text``; ValueError if it is not a non-negative multiple of the step."""
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a decimal") from None
        if not value.is_finite() or value < 0:
            raise ValueError(f"{text!r} is not a non-negative decimal")
        scaled = value.scaleb(self.scale)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{text!r} is off the {self.step} grid")
        units, rest = divmod(int(scaled), self.mantissa)
        if rest:
            raise ValueError(f"{text!r} is off the {self.step} grid")
        return units


@dataclass(frozen=True)
class SimInstrument:
    """One simulated symbol: grids, wire text style and model scale.

    ``asset`` is the key of the shared fair price: instruments on different venues with the
    same asset ("BTC-USDT") follow the same fair price, which is what makes cross-venue
    spreads meaningful.
    """

    symbol: str
    tick: str
    lot: str
    price_decimals: int | None  # None: trimmed text (OKX)
    size_decimals: int | None
    start_price: str
    typical_size: str  # a usual level size, in the venue's size unit
    asset: str
    depth: int = 100  # levels per side the model keeps

    @cached_property
    def price(self) -> DecimalText:
        return DecimalText(self.tick, self.price_decimals)

    @cached_property
    def size(self) -> DecimalText:
        return DecimalText(self.lot, self.size_decimals)

    @cached_property
    def tick_fair(self) -> int:
        """One tick in FAIR_SCALE units."""
        if self.price.scale > 12:
            raise ValueError(f"{self.symbol}: tick {self.tick} is finer than 10^-12")
        return self.price.mantissa * int(10 ** (12 - self.price.scale))


def _spot(symbol: str, tick: str, lot: str, start: str, typical: str, asset: str) -> SimInstrument:
    return SimInstrument(symbol, tick, lot, 8, 8, start, typical, asset)


# exchangeInfo-like specs (2024). Spot texts carry 8 decimals; USDⓈ-M prices 2 and sizes 3
# decimals, as in the hftbacktest recordings ("61800.20", "0.014"); OKX texts are trimmed.
BINANCE_SPOT: dict[str, SimInstrument] = {
    "BTCUSDT": _spot("BTCUSDT", "0.01", "0.00001", "61737.63", "0.25", "BTC-USDT"),
    "ETHUSDT": _spot("ETHUSDT", "0.01", "0.0001", "2650.00", "4", "ETH-USDT"),
}
BINANCE_USDM: dict[str, SimInstrument] = {
    "BTCUSDT": SimInstrument("BTCUSDT", "0.10", "0.001", 2, 3, "61737.60", "0.5", "BTC-USDT"),
    "ETHUSDT": SimInstrument("ETHUSDT", "0.01", "0.001", 2, 3, "2650.00", "5", "ETH-USDT"),
}
OKX_INSTRUMENTS: dict[str, SimInstrument] = {
    "BTC-USDT": SimInstrument(
        "BTC-USDT", "0.1", "0.00000001", None, None, "61737.6", "0.25", "BTC-USDT"
    ),
    "ETH-USDT": SimInstrument("ETH-USDT", "0.01", "0.000001", None, None, "2650", "4", "ETH-USDT"),
    # Swap sizes are contracts of 0.01 BTC.
    "BTC-USDT-SWAP": SimInstrument(
        "BTC-USDT-SWAP", "0.1", "0.01", None, None, "61737.6", "40", "BTC-USDT"
    ),
}


def _fair_units(text: str) -> int:
    return DecimalText("0.000000000001", None).parse(text)


class FairPrice:
    """The fair price of one asset: an integer random walk in FAIR_SCALE units.

    It advances one step per ``step_ns`` of elapsed time since its first reading, lazily, so
    every reader at time t sees the same value whatever the order of reads. The step return
    is the sum of two uniform integers in [-vol_ppm, vol_ppm] parts per million (a triangle:
    cheap, bounded, mean zero).
    """

    def __init__(
        self, start: str, *, seed: int | str = 0, step_ns: int = 100_000_000, vol_ppm: int = 40
    ) -> None:
        if step_ns <= 0 or vol_ppm < 0:
            raise ValueError("step_ns must be > 0 and vol_ppm >= 0")
        self.price = _fair_units(start)
        self.floor = max(1, self.price // 100)  # a walk must not reach zero
        self.step_ns = step_ns
        self.vol_ppm = vol_ppm
        self.steps = 0
        self._rng = random.Random(seed)
        self._origin_ns: int | None = None

    def at(self, now_ns: int) -> int:
        if self._origin_ns is None:
            self._origin_ns = now_ns
        target = (now_ns - self._origin_ns) // self.step_ns
        rng, vol = self._rng, self.vol_ppm
        while self.steps < target:
            ppm = rng.randint(-vol, vol) + rng.randint(-vol, vol)
            self.price = max(self.floor, self.price + self.price * ppm // 1_000_000)
            self.steps += 1
        return self.price


class FairMarket:
    """The shared world: one ``FairPrice`` per asset, created on first use.

    Give the same ``FairMarket`` to two simulators to make their books follow the same
    prices; each asset's walk is seeded from (seed, asset), so it does not depend on the order
    in which venues ask for it.
    """

    def __init__(self, seed: int = 0, *, step_ns: int = 100_000_000, vol_ppm: int = 40) -> None:
        self.seed = seed
        self.step_ns = step_ns
        self.vol_ppm = vol_ppm
        self._fairs: dict[str, FairPrice] = {}

    def fair(self, asset: str, start: str) -> FairPrice:
        fair = self._fairs.get(asset)
        if fair is None:
            fair = FairPrice(
                start, seed=f"{self.seed}:{asset}", step_ns=self.step_ns, vol_ppm=self.vol_ppm
            )
            self._fairs[asset] = fair
        return fair


@dataclass(frozen=True, slots=True)
class Changes:
    """One event's level changes in ticks and lots, best first; size 0 deletes."""

    bids: tuple[tuple[int, int], ...] = ()
    asks: tuple[tuple[int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def text(self, instrument: SimInstrument) -> tuple[list[list[str]], list[list[str]]]:
        """Bids and asks as the ``[[price, size], ...]`` lists of a wire message."""
        px, sz = instrument.price.format, instrument.size.format
        return (
            [[px(p), sz(q)] for p, q in self.bids],
            [[px(p), sz(q)] for p, q in self.asks],
        )

    def text_changes(self, instrument: SimInstrument) -> list[TextChange]:
        """The replay format: ``(side, price, size)``, bids then asks."""
        px, sz = instrument.price.format, instrument.size.format
        return [(BID, px(p), sz(q)) for p, q in self.bids] + [
            (ASK, px(p), sz(q)) for p, q in self.asks
        ]

    @staticmethod
    def of(touched: dict[tuple[Side, int], int], book: TrueBook) -> Changes:
        """The net effect of a tick: levels whose final size differs from their start."""
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        for (side, price), before in touched.items():
            now = book.size_at(side, price)
            if now != before:
                (bids if side == BID else asks).append((price, now))
        bids.sort(reverse=True)
        asks.sort()
        return Changes(tuple(bids), tuple(asks))

    @staticmethod
    def merge(parts: Iterable[Changes]) -> Changes:
        """Several consecutive events as one (a slower stream): the last size of each level."""
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for part in parts:
            bids.update(part.bids)
            asks.update(part.asks)
        return Changes(tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items())))


@dataclass(frozen=True)
class BookSnapshot:
    """A copy of a true book as text, best first. ``update_id`` is the venue's id of the last
    change in it (Binance ``u``/``lastUpdateId``, OKX ``seqId``)."""

    symbol: str
    update_id: int
    bids: tuple[tuple[str, str], ...]
    asks: tuple[tuple[str, str], ...]

    @property
    def best_bid(self) -> tuple[str, str] | None:
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> tuple[str, str] | None:
        return self.asks[0] if self.asks else None

    @property
    def crossed(self) -> bool:
        if not self.bids or not self.asks:
            return False
        return Decimal(self.bids[0][0]) >= Decimal(self.asks[0][0])


class TrueBook:
    """The venue's own book: price ticks -> size lots per side."""

    def __init__(self, instrument: SimInstrument) -> None:
        self.instrument = instrument
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def side(self, side: Side) -> dict[int, int]:
        return self.bids if side == BID else self.asks

    def size_at(self, side: Side, price: int) -> int:
        return self.side(side).get(price, 0)

    def set(self, side: Side, price: int, size: int) -> None:
        levels = self.side(side)
        if size:
            levels[price] = size
        else:
            levels.pop(price, None)

    def apply(self, changes: Changes) -> None:
        for price, size in changes.bids:
            self.set(BID, price, size)
        for price, size in changes.asks:
            self.set(ASK, price, size)

    def best(self, side: Side) -> int | None:
        levels = self.side(side)
        if not levels:
            return None
        return max(levels) if side == BID else min(levels)

    @property
    def crossed(self) -> bool:
        bid, ask = self.best(BID), self.best(ASK)
        return bid is not None and ask is not None and bid >= ask

    def levels(self, side: Side, limit: int | None = None) -> list[tuple[int, int]]:
        """(price, size) best first, at most ``limit`` of them."""
        levels = self.side(side)
        if limit is None or limit >= len(levels):
            return sorted(levels.items(), reverse=side == BID)
        pick = heapq.nlargest if side == BID else heapq.nsmallest
        return [(p, levels[p]) for p in pick(limit, levels)]

    def text_levels(self, side: Side, limit: int | None = None) -> list[tuple[str, str]]:
        px, sz = self.instrument.price.format, self.instrument.size.format
        return [(px(p), sz(q)) for p, q in self.levels(side, limit)]

    def snapshot(self, update_id: int, limit: int | None = None) -> BookSnapshot:
        return BookSnapshot(
            self.instrument.symbol,
            update_id,
            tuple(self.text_levels(BID, limit)),
            tuple(self.text_levels(ASK, limit)),
        )


@dataclass
class ModelConfig:
    """Shape of the stochastic book. Probabilities are plain floats: they pick events, they
    are never prices or sizes."""

    spreads: Sequence[int] = (1, 1, 1, 1, 2, 3)  # spread in ticks, drawn now and then
    spread_change_prob: float = 0.1
    churn: tuple[int, int] = (1, 6)  # level changes behind the top per tick
    near_levels: int = 10  # levels kept within 2 * near_levels ticks of each top
    mid_noise_ticks: int = 1  # venue-specific jitter around the fair price
    # Occasional random dislocations: per-tick probability, |bps| range, duration range (s).
    random_dislocation_prob: float = 0.0
    random_dislocation_bps: tuple[int, int] = (10, 40)
    random_dislocation_s: tuple[float, float] = (1.0, 5.0)

    def __post_init__(self) -> None:
        if not self.spreads or min(self.spreads) < 1:
            raise ValueError("spreads must be >= 1 tick (a 0 spread is a crossed book)")
        if not 0 <= self.churn[0] <= self.churn[1] or self.near_levels < 0:
            raise ValueError("churn must be an ordered non-negative range, near_levels >= 0")


@dataclass
class _Dislocation:
    bps: Decimal
    until_ns: int


class BookModel:
    """Moves one true book around a (shared) fair price, one tick at a time.

    Each tick: pick the target best bid/ask from the fair price (plus active dislocations and
    a tick of venue noise), delete every level that would cross or sit inside the new top,
    insert the new best levels, then change, delete or insert a few levels behind the top
    (chosen with a geometric law, so activity concentrates near the top), refill the levels
    just behind each top if a jump left a hole, and keep ``instrument.depth`` levels per side
    (trimming or adding at the far end). By construction all bids stay below all asks.
    """

    def __init__(
        self,
        instrument: SimInstrument,
        fair: FairPrice,
        *,
        seed: int | str = 0,
        config: ModelConfig | None = None,
    ) -> None:
        self.instrument = instrument
        self.fair = fair
        self.config = config or ModelConfig()
        self.book = TrueBook(instrument)
        self.rng = random.Random(seed)
        self.typical_lots = max(1, instrument.size.parse(instrument.typical_size))
        self._dislocations: list[_Dislocation] = []
        self._spread = self.config.spreads[0]
        self._initialised = False

    # -- dislocations -----------------------------------------------------------------------

    def dislocate(self, bps: int | str | Decimal, seconds: float, now_ns: int) -> None:
        """Shift this venue's book by ``bps`` basis points (of the fair price) for ``seconds``."""
        if seconds <= 0:
            raise ValueError("a dislocation needs a positive duration")
        value = Decimal(bps)
        if not value.is_finite():
            raise ValueError(f"bad bps {bps!r}")
        self._dislocations.append(_Dislocation(value, now_ns + int(seconds * 1e9)))

    def offset_bps(self, now_ns: int) -> Decimal:
        self._dislocations = [d for d in self._dislocations if d.until_ns > now_ns]
        return sum((d.bps for d in self._dislocations), Decimal(0))

    def _random_dislocation(self, now_ns: int) -> None:
        cfg, rng = self.config, self.rng
        if cfg.random_dislocation_prob <= 0 or rng.random() >= cfg.random_dislocation_prob:
            return
        bps = rng.randint(*cfg.random_dislocation_bps) * rng.choice((-1, 1))
        self.dislocate(bps, rng.uniform(*cfg.random_dislocation_s), now_ns)

    def target_ticks(self, now_ns: int) -> int:
        """The tick just below this venue's fair price (with dislocations and noise)."""
        fair = Decimal(self.fair.at(now_ns))
        shifted = fair * (_BPS + self.offset_bps(now_ns)) / _BPS
        noise = self.config.mid_noise_ticks
        jitter = self.rng.randint(-noise, noise) if noise else 0
        return max(2, int(shifted) // self.instrument.tick_fair + jitter)

    # -- the book ---------------------------------------------------------------------------

    def _size(self, distance: int) -> int:
        # Deeper levels hold more, as on real books; never 0 (0 means "delete").
        grow = 1 + distance // 20
        lots = self.typical_lots
        return max(1, self.rng.randint(lots // 20, 2 * lots) * grow)

    def _refill_top(
        self, touched: dict[tuple[Side, int], int], best_bid: int, best_ask: int
    ) -> None:
        """Keep ``near_levels`` levels within twice as many ticks behind each top.

        After the fair price jumps, the new top stands alone with a hole behind it; real
        liquidity fills such holes within moments, so the model does it in the same tick.
        """
        near = self.config.near_levels
        window = 2 * near
        for side, top, sign in ((BID, best_bid, -1), (ASK, best_ask, 1)):
            levels = self.book.side(side)
            count = sum(1 for d in range(window + 1) if top + sign * d in levels)
            for _ in range(4 * near):  # bounded: the window may be nearly full
                if count >= near:
                    break
                price = top + sign * self.rng.randint(1, window)
                if price > 0 and price not in levels:
                    self._put(touched, side, price, self._size(abs(price - top)))
                    count += 1

    def _fill(self, touched: dict[tuple[Side, int], int], best_bid: int, best_ask: int) -> None:
        """Top the depth up on both sides, gaps widening away from the top."""
        depth = self.instrument.depth
        for side, top, sign in ((BID, best_bid, -1), (ASK, best_ask, 1)):
            levels = self.book.side(side)
            if not levels:
                self._put(touched, side, top, self._size(0))
            far = min(levels) if side == BID else max(levels)
            while len(levels) < depth:
                n = len(levels)
                far += sign * (1 + self.rng.randint(0, n // 10))
                if far <= 0:
                    break
                self._put(touched, side, far, self._size(n))

    def _put(self, touched: dict[tuple[Side, int], int], side: Side, price: int, size: int) -> None:
        key = (side, price)
        if key not in touched:
            touched[key] = self.book.size_at(side, price)
        self.book.set(side, price, size)

    def step(self, now_ns: int) -> Changes:
        """Advance one tick; the net level changes (already applied to ``book``)."""
        rng, cfg, book = self.rng, self.config, self.book
        touched: dict[tuple[Side, int], int] = {}
        self._random_dislocation(now_ns)
        if rng.random() < cfg.spread_change_prob:
            self._spread = rng.choice(cfg.spreads)
        center = self.target_ticks(now_ns)
        best_bid = center - self._spread // 2
        best_ask = best_bid + self._spread
        # Clear the way for the new top: nothing may stay at or inside it on either side.
        for price in [p for p in book.bids if p > best_bid]:
            self._put(touched, BID, price, 0)
        for price in [p for p in book.asks if p < best_ask]:
            self._put(touched, ASK, price, 0)
        for side, top in ((BID, best_bid), (ASK, best_ask)):
            if not book.size_at(side, top):
                self._put(touched, side, top, self._size(0))  # a new best level
        if not self._initialised:
            self._initialised = True
            self._fill(touched, best_bid, best_ask)
            return Changes.of(touched, book)
        for _ in range(rng.randint(*cfg.churn)):
            self._churn(touched, rng.choice((BID, ASK)), best_bid, best_ask)
        self._refill_top(touched, best_bid, best_ask)
        self._trim(touched)
        self._fill(touched, best_bid, best_ask)
        return Changes.of(touched, book)

    def _churn(
        self, touched: dict[tuple[Side, int], int], side: Side, best_bid: int, best_ask: int
    ) -> None:
        rng = self.rng
        near = self.book.levels(side, 64)
        index = 0
        while index < len(near) - 1 and rng.random() < 0.8:  # geometric: mostly near the top
            index += 1
        price = near[index][0]
        roll = rng.random()
        if roll < 0.6:
            self._put(touched, side, price, self._size(index))
        elif roll < 0.8 and index > 0:  # never delete the top: it is the spread target
            self._put(touched, side, price, 0)
        else:
            gap = rng.randint(1, 3)
            new = price - gap if side == BID else price + gap
            inside = new < best_bid if side == BID else new > best_ask
            if new > 0 and inside and not self.book.size_at(side, new):
                self._put(touched, side, new, self._size(index))

    def _trim(self, touched: dict[tuple[Side, int], int]) -> None:
        depth = self.instrument.depth
        for side in (BID, ASK):
            levels = self.book.side(side)
            if len(levels) > depth:
                extra = len(levels) - depth
                worst = (
                    heapq.nsmallest(extra, levels) if side == BID else heapq.nlargest(extra, levels)
                )
                for price in worst:
                    self._put(touched, side, price, 0)


_REPLAY_SIDES: dict[str, Side] = {
    "bid": BID,
    "b": BID,
    "buy": BID,
    "ask": ASK,
    "a": ASK,
    "sell": ASK,
}


class ReplaySource:
    """Drives a true book from recorded change batches: one batch per tick.

    Each batch is an iterable of ``(side, price_text, size_text)`` with side "bid"/"ask"
    (also "b"/"a", "buy"/"sell"). Texts are parsed on the instrument's grids (off-grid text
    raises ValueError) and re-emitted in the venue's own text style. The first batch usually
    is the recording's snapshot. Once the batches run out the book stays still. Replayed books
    are applied as recorded: if the recording crossed, so does the simulated venue.
    """

    def __init__(
        self, instrument: SimInstrument, batches: Iterable[Iterable[tuple[str, str, str]]]
    ) -> None:
        self.instrument = instrument
        self.book = TrueBook(instrument)
        self._batches: Iterator[Iterable[tuple[str, str, str]]] = iter(batches)
        self.exhausted = False
        self.batches = 0

    def step(self, now_ns: int) -> Changes:
        if self.exhausted:
            return Changes()
        try:
            batch = next(self._batches)
        except StopIteration:
            self.exhausted = True
            return Changes()
        self.batches += 1
        px, sz = self.instrument.price.parse, self.instrument.size.parse
        touched: dict[tuple[Side, int], int] = {}
        for side_text, price_text, size_text in batch:
            side = _REPLAY_SIDES.get(side_text.lower())
            if side is None:
                raise ValueError(f"replay batch {self.batches}: bad side {side_text!r}")
            price = px(price_text)
            key = (side, price)
            if key not in touched:
                touched[key] = self.book.size_at(side, price)
            self.book.set(side, price, sz(size_text))
        return Changes.of(touched, self.book)


def crossed_levels(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """A deliberately crossed copy of a snapshot's levels (the CROSSED_SNAPSHOT fault): a bid
    one tick above the best ask (or, with no asks, an ask one tick below the best bid)."""
    if asks:
        size = bids[0][1] if bids else asks[0][1]
        return [(asks[0][0] + 1, size), *bids], asks
    if bids and bids[0][0] > 1:
        return bids, [(bids[0][0] - 1, bids[0][1])]
    return bids, asks
