"""Fault injection for the simulated venues, driven from tests (or the demo) at runtime.

A test arms a rule (``inject``): a fault kind, how many times it may fire (one-shot by default,
``count=None`` for "until cancelled") and the probability of firing at each opportunity. The
servers ask ``take(kind, symbol)`` at every opportunity (each data message sent on a
connection, each snapshot, each REST request); a rule that fires is counted, logged with a
detail (which update ids were dropped, which status was sent) and returned so the server can
read its parameters. Draws come from a seeded ``random.Random``, so a probabilistic run is
reproducible for the same traffic.

Opportunities, per kind:

* per data message on one connection (Binance depth event, OKX ``books`` push): ``DROP``,
  ``DUPLICATE``, ``REORDER`` (held back and sent after the next message), ``MALFORMED``
  (invalid JSON in place of the message), ``TRUNCATED`` (the first half of the message),
  ``DISCONNECT`` (TCP close, no close frame), ``SILENCE`` (for ``seconds``: nothing at all is
  sent on that connection, not even pings; messages due meanwhile are lost), and OKX's
  ``CORRUPT_CHECKSUM`` (decided as the message is built, so it may combine with another
  fault); each server ping is an opportunity for ``DISCONNECT`` and ``SILENCE`` too (with
  no symbol), so an idle connection can be cut or silenced;
* per OKX symbol update (all connections see it, as seqIds are shared): ``SEQ_RESET``;
* per snapshot (Binance REST, OKX WS and REST): ``CROSSED_SNAPSHOT``;
* per REST request: ``REST_DELAY`` (``seconds``, then the normal reply), ``REST_429`` and
  ``REST_418`` (``Retry-After: seconds``), ``REST_5XX`` (``status``);
* per order request (REST or WebSocket API; ``exchange.SimExchange.fate``): ``ORDER_418``,
  ``ORDER_429`` (refused, ``Retry-After: seconds``), ``ORDER_REJECT`` (the venue's generic
  reject), ``ORDER_TIMEOUT`` (executed, reply lost), ``ORDER_LATE_FILL`` (acked as new,
  matched ``seconds`` later), ``ORDER_PARTIAL`` (at most half fills), tried in that order.

At most one of the per-message faults applies to a given message. They are tried in this
order: DISCONNECT, SILENCE, DROP, MALFORMED, TRUNCATED, DUPLICATE, REORDER; so arming DROP
and DUPLICATE at once drops first. MALFORMED and TRUNCATED replace the message, so its
update is lost too (a gap follows). A one-shot fault fires on whichever connection sends a
matching message first; tests normally use one connection per simulator.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Fault", "FaultEvent", "FaultInjector", "FaultRule"]


class Fault(StrEnum):
    DROP = "drop"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    DISCONNECT = "disconnect"
    SILENCE = "silence"
    CORRUPT_CHECKSUM = "corrupt_checksum"
    SEQ_RESET = "seq_reset"
    CROSSED_SNAPSHOT = "crossed_snapshot"
    REST_DELAY = "rest_delay"
    REST_429 = "rest_429"
    REST_418 = "rest_418"
    REST_5XX = "rest_5xx"
    ORDER_REJECT = "order_reject"
    ORDER_TIMEOUT = "order_timeout"
    ORDER_LATE_FILL = "order_late_fill"
    ORDER_PARTIAL = "order_partial"
    ORDER_429 = "order_429"
    ORDER_418 = "order_418"


# Seconds / status used when ``inject`` is not told.
_DEFAULT_SECONDS = {
    Fault.SILENCE: 5.0,
    Fault.REST_DELAY: 2.0,
    Fault.REST_429: 1.0,
    Fault.REST_418: 2.0,
    Fault.ORDER_LATE_FILL: 0.5,
    Fault.ORDER_429: 1.0,
    Fault.ORDER_418: 2.0,
}


@dataclass
class FaultRule:
    """An armed fault. ``remaining`` None fires until cancelled."""

    kind: Fault
    remaining: int | None
    probability: float
    symbol: str | None
    seconds: float
    status: int
    fired: int = 0

    @property
    def spent(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


@dataclass(frozen=True)
class FaultEvent:
    """One fault that fired: what, on which symbol, and a human detail (ids, status)."""

    kind: Fault
    symbol: str | None
    detail: str
    mono_ns: int


class FaultInjector:
    """The armed rules of one simulated venue, and the record of what fired."""

    def __init__(self, seed: int | str = 0, *, supported: Iterable[Fault] = tuple(Fault)) -> None:
        self.supported = frozenset(supported)
        self.rules: list[FaultRule] = []
        self.counts: Counter[Fault] = Counter()
        self.events: list[FaultEvent] = []
        self._rng = random.Random(seed)
        self._armed: set[Fault] = set()  # kinds with a live rule: a cheap test per message

    def inject(
        self,
        kind: Fault | str,
        *,
        count: int | None = 1,
        probability: float = 1.0,
        symbol: str | None = None,
        seconds: float | None = None,
        status: int = 503,
    ) -> FaultRule:
        """Arm a fault: it fires at most ``count`` times (None: until cancelled), each
        opportunity with ``probability``, only for ``symbol`` if given."""
        fault = Fault(kind)
        if fault not in self.supported:
            raise ValueError(f"this venue does not simulate {fault.value}")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 (or None for unlimited)")
        if not 0.0 < probability <= 1.0:
            raise ValueError("probability must be in (0, 1]")
        if fault == Fault.REST_5XX and not 500 <= status <= 599:
            raise ValueError(f"REST_5XX needs a 5xx status, got {status}")
        secs = _DEFAULT_SECONDS.get(fault, 0.0) if seconds is None else seconds
        if secs < 0:
            raise ValueError("seconds must be >= 0")
        rule = FaultRule(fault, count, probability, symbol, secs, status)
        self.rules.append(rule)
        self._armed.add(fault)
        return rule

    def cancel(self, rule: FaultRule) -> None:
        if rule in self.rules:
            self.rules.remove(rule)
        self._rearm()

    def clear(self) -> None:
        """Disarm everything (counts and events are kept)."""
        self.rules.clear()
        self._armed.clear()

    def _rearm(self) -> None:
        self._armed = {r.kind for r in self.rules}

    def armed(self, kind: Fault) -> bool:
        return kind in self._armed

    def take(self, kind: Fault, symbol: str | None = None, detail: str = "") -> FaultRule | None:
        """At an opportunity for ``kind``: the rule that fires now (counted), or None."""
        if kind not in self._armed:
            return None
        for rule in self.rules:
            if rule.kind != kind or (rule.symbol is not None and rule.symbol != symbol):
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            rule.fired += 1
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.spent:
                    self.rules.remove(rule)
                    self._rearm()
            self.counts[kind] += 1
            self.events.append(FaultEvent(kind, symbol, detail, time.monotonic_ns()))
            return rule
        return None

    def count(self, kind: Fault | str) -> int:
        return self.counts[Fault(kind)]

    def details(self, kind: Fault | str) -> list[str]:
        fault = Fault(kind)
        return [e.detail for e in self.events if e.kind == fault]

    async def wait(self, kind: Fault | str, n: int = 1, timeout: float = 5.0) -> None:
        """Until ``kind`` has fired ``n`` times; TimeoutError after ``timeout`` seconds."""
        fault = Fault(kind)
        async with asyncio.timeout(timeout):
            while self.counts[fault] < n:
                await asyncio.sleep(0.005)
