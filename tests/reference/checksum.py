"""Pure-Python reference book checksums (Kraken, OKX): the oracle for arbengine.venues.checksum.

Written the way the venues' docs and most Python clients do it: the book holds the venue's
decimal text, the checksum text is built with str methods and hashed with ``zlib.crc32``. It
shares nothing with the compiled module (not its CRC-32, not ``format_decimal``, not the
ladder book), so agreement between the two means something. The benchmark imports it as the
"common Python path".
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal
from itertools import islice
from typing import Final

from sortedcontainers import SortedDict

__all__ = [
    "ASK",
    "BID",
    "KRAKEN_LEVELS",
    "OKX_LEVELS",
    "TextBook",
    "TextLevel",
    "kraken_checksum",
    "kraken_text",
    "kraken_wire_text",
    "okx_checksum",
    "okx_text",
    "okx_wire_text",
]

BID: Final = 0
ASK: Final = 1
KRAKEN_LEVELS: Final = 10
OKX_LEVELS: Final = 25

# (price text, size text) exactly as the venue writes them.
TextLevel = tuple[str, str]


def kraken_wire_text(value: Decimal, decimals: int) -> str:
    """``value`` written with exactly ``decimals`` decimals, as Kraken does on the wire."""
    return f"{value:.{decimals}f}"


def okx_wire_text(value: Decimal) -> str:
    """``value`` as OKX writes it: plain decimal text without trailing fractional zeros."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _kraken_field(text: str) -> str:
    # The doc's recipe, literally: remove the point, then strip the leading zeros.
    return text.replace(".", "").lstrip("0")


def kraken_text(asks: Iterable[TextLevel], bids: Iterable[TextLevel]) -> str:
    """Checksum text of the top 10 asks (low to high) then the top 10 bids (high to low);
    each iterable is in that order already."""
    parts = []
    for levels in (asks, bids):
        for price, qty in islice(levels, KRAKEN_LEVELS):
            parts.append(_kraken_field(price))
            parts.append(_kraken_field(qty))
    return "".join(parts)


def kraken_checksum(asks: Iterable[TextLevel], bids: Iterable[TextLevel]) -> int:
    """Kraken's unsigned CRC-32 of the book."""
    return zlib.crc32(kraken_text(asks, bids).encode("ascii"))


def okx_text(bids: Sequence[TextLevel], asks: Sequence[TextLevel]) -> str:
    """Checksum text ``bid1px:bid1sz:ask1px:ask1sz:...`` over the first 25 levels a side
    (best first); a side that runs out is skipped and the other goes on alone."""
    parts: list[str] = []
    for i in range(OKX_LEVELS):
        for side in (bids, asks):
            if i < len(side):
                parts.extend(side[i])
    return ":".join(parts)


def okx_checksum(bids: Sequence[TextLevel], asks: Sequence[TextLevel]) -> int:
    """OKX's CRC-32 of the book, as a signed 32-bit integer."""
    crc = zlib.crc32(okx_text(bids, asks).encode("ascii"))
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class TextBook:
    """An L2 book of venue text: for each side, price text -> size text, ordered by value.

    Size text whose value is zero deletes the level. ``max_depth`` (0 = unlimited) truncates
    each side at ``finish``, after a whole message, as Kraken requires.
    """

    __slots__ = ("_max_depth", "_sides")

    def __init__(self, max_depth: int = 0) -> None:
        self._max_depth = max_depth
        # Keyed by the Decimal price; values keep the texts as received.
        self._sides: tuple[SortedDict, SortedDict] = (SortedDict(), SortedDict())

    def set(self, side: int, price: str, size: str) -> None:
        key = Decimal(price)
        if Decimal(size) == 0:
            self._sides[side].pop(key, None)
        else:
            self._sides[side][key] = (price, size)

    def finish(self) -> None:
        if not self._max_depth:
            return
        bids, asks = self._sides
        while len(bids) > self._max_depth:
            bids.popitem(0)  # lowest bid
        while len(asks) > self._max_depth:
            asks.popitem(-1)  # highest ask

    def clear(self) -> None:
        for side in self._sides:
            side.clear()

    def top(self, side: int, n: int) -> list[TextLevel]:
        """Up to ``n`` levels of ``side`` from the best."""
        levels = self._sides[side]
        keys = islice(reversed(levels) if side == BID else iter(levels), n)
        return [levels[k] for k in keys]

    def depth(self, side: int) -> int:
        return len(self._sides[side])
