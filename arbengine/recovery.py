"""Crash recovery: the engine's state rebuilt from the audit journal.

The journal is the record of truth for what this process did: every order handed to a
gateway, every fill, every final state, every settled arb and every kill-switch change is
written inline, in the order it happened, on the event loop. So the state after the last
durable entry is a pure function of the entries, and recovery is a replay:

1. find the newest ``checkpoint`` entry (``Engine.checkpoint`` writes one at startup, after a
   recovery and whenever the daemon asks): it holds the portfolio snapshot, the open orders
   and arbs, unhedged exposure, the kill-switch level and the counters at that instant;
2. restore from it and apply every later entry in order: ``order`` reserves, ``fill``
   applies, ``done`` releases, ``arb_done`` books the residual exposure, ``kill_switch``
   sets the level, ``counters`` refreshes the per-update counters.

The portfolio's calls are idempotent (see ``portfolio``), so replaying is exact whatever the
checkpoint already held. What a crash can lose is only what was not yet durable (the writer
fsyncs in batches of ``batch_ms``); for paper venues that died with the process it never
happened, and live venues are reconciled against it (the gateways' issue).

Orders still open at the crash come back as UNKNOWN: they may have filled while we were
down. The executor asks their venue by client id (``Executor.adopt``) and never assumes
them rejected; their reservations stay until then.

Counters: those with one journal entry per increment (arbs, fills, unknown outcomes, hedges,
leg failures, settled arbs, budget drops) are exact. Per-update ones (evaluations,
opportunities, refusals that repeat without a journal entry) are exact as of the last
``counters`` entry and lower bounds after it.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from arbengine._core.instrument import Instrument
from arbengine.journal import as_int, journal_files, read_entries
from arbengine.orders import Fill, Order, OrderStatus, Purpose, Side, TimeInForce
from arbengine.portfolio import Portfolio
from arbengine.risk import KillLevel

__all__ = [
    "CHECKPOINT",
    "COUNTERS",
    "KILL_SWITCH",
    "RecoveredArb",
    "Recovery",
    "RecoveryError",
    "recover",
]

CHECKPOINT = "checkpoint"
COUNTERS = "counters"
KILL_SWITCH = "kill_switch"
STATE_VERSION = 1


class RecoveryError(Exception):
    """The journal cannot be replayed into a state (one line: what and which entry)."""


@dataclass(slots=True)
class RecoveredArb:
    """An arb that had not settled when the journal ends."""

    arb_id: str
    pair_id: str
    buy: Instrument
    sell: Instrument
    edge_bps: Decimal
    legs: list[Order] = field(default_factory=list)
    hedges: list[Order] = field(default_factory=list)
    hedging: bool = False  # a leg failure was being handled
    flatten: bool = False  # a flatten (Executor.flatten), not an arb of a pair


@dataclass(slots=True)
class Recovery:
    """What ``recover`` rebuilt; ``Engine.adopt`` takes it over."""

    portfolio: Portfolio
    arbs: dict[str, RecoveredArb]  # open arbs by id
    exposure: dict[str, int]  # base atoms left unhedged by settled arbs, by asset
    kill_level: KillLevel = KillLevel.NONE
    kill_by: str = ""
    kill_why: str = ""
    engine_counters: dict[str, int] = field(default_factory=dict)
    executor_counters: dict[str, int] = field(default_factory=dict)
    risk_counters: dict[str, int] = field(default_factory=dict)
    arb_ids: set[str] = field(default_factory=set)  # every arb id seen (ids must not repeat)
    checkpoint_seq: int = 0  # 0: no checkpoint, replayed from the start
    last_seq: int = 0
    replayed: int = 0  # entries applied after the checkpoint

    def open_orders(self) -> list[Order]:
        return [o for arb in self.arbs.values() for o in arb.legs + arb.hedges if not o.status.done]


def _epoch_ns(ts: str) -> int:
    """The journal's ``ts`` stamp (UTC, microseconds) back to epoch ns."""
    whole, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(
        frac.ljust(9, "0")[:9]
    )


def _fill(client_id: str, row: Mapping[str, Any]) -> Fill:
    """A fill back from its journal fields (``fill`` entries and checkpoints alike); its
    receive stamp was another process's monotonic clock, so it is not kept."""
    return Fill(
        client_id,
        as_int(row["price"]),
        as_int(row["size"]),
        as_int(row["fee"]),
        row["fee_asset"],
        0,
        row["trade_id"],
        row["late"],
    )


class _ReplayClock:
    """The portfolio's wall clock during replay: the time of the entry being applied, so a
    fill lands in the UTC day it was journaled on."""

    def __init__(self) -> None:
        self.now = 0
        self.live = False

    def __call__(self) -> int:
        return time.time_ns() if self.live else self.now


def order_state(order: Order, fee_bps: Decimal) -> dict[str, Any]:
    """An open order as checkpoint data (grid ints and names only)."""
    return {
        "client_id": order.client_id,
        "arb_id": order.arb_id,
        "venue": order.instrument.venue,
        "symbol": order.instrument.symbol,
        "side": int(order.side),
        "tif": str(order.tif),
        "purpose": str(order.purpose),
        "status": str(order.status),
        "price": order.price,
        "size": order.size,
        "fee_bps": str(fee_bps),
        "fills": [
            {
                "trade_id": f.trade_id,
                "price": f.price,
                "size": f.size,
                "fee": f.fee,
                "fee_asset": f.fee_asset,
                "late": f.late,
            }
            for f in order.fills
        ],
    }


class _Replay:
    def __init__(self, instruments: Mapping[tuple[str, str], Instrument]) -> None:
        self.instruments = instruments
        self.clock = _ReplayClock()
        self.portfolio: Portfolio | None = None
        self.arbs: dict[str, RecoveredArb] = {}
        self.orders: dict[str, Order] = {}
        self.exposure: dict[str, int] = {}
        self.kill = (KillLevel.NONE, "", "")
        self.engine_counters: dict[str, int] = {}
        self.executor_counters: dict[str, int] = {}
        self.risk_counters: dict[str, int] = {}
        self.arb_ids: set[str] = set()
        self.seq = 0

    # -- helpers ----------------------------------------------------------------------------

    def fail(self, why: str) -> RecoveryError:
        return RecoveryError(f"journal entry {self.seq}: {why}")

    def instrument(self, venue: str, symbol: str) -> Instrument:
        inst = self.instruments.get((venue, symbol))
        if inst is None:
            raise self.fail(f"{venue}:{symbol} is not a configured instrument")
        return inst

    def by_name(self, name: str) -> Instrument:
        venue, _, symbol = name.partition(":")
        return self.instrument(venue, symbol)

    def count(self, table: dict[str, int], key: str, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def arb(self, arb_id: str) -> RecoveredArb:
        arb = self.arbs.get(arb_id)
        if arb is None:
            raise self.fail(f"arb {arb_id} has no arb entry before it")
        return arb

    def order(self, client_id: str) -> Order:
        order = self.orders.get(client_id)
        if order is None:
            raise self.fail(f"order {client_id} has no order entry before it")
        return order

    def build_order(self, e: Mapping[str, Any]) -> Order:
        return Order(
            client_id=e["client_id"],
            arb_id=e["arb_id"],
            instrument=self.instrument(e["venue"], e["symbol"]),
            side=Side(e["side"]),
            price=as_int(e["price"]),
            size=as_int(e["size"]),
            tif=TimeInForce(e["tif"]),
            purpose=Purpose(e["purpose"]),
            status=OrderStatus(e["status"]),
        )

    @property
    def pf(self) -> Portfolio:
        if self.portfolio is None:
            raise self.fail("trading entries before any checkpoint")
        return self.portfolio

    # -- entries ----------------------------------------------------------------------------

    def checkpoint(self, e: Mapping[str, Any]) -> None:
        state = e["state"]
        if state.get("version") != STATE_VERSION:
            raise self.fail(f"unsupported checkpoint version {state.get('version')}")
        self.portfolio = Portfolio.restore(state["portfolio"], clock=self.clock)
        self.exposure = {a: as_int(n) for a, n in state["exposure"].items()}
        level = state["kill"]
        self.kill = (KillLevel[level["level"]], level["by"], level["why"])
        self.engine_counters = {k: as_int(v) for k, v in state["engine_counters"].items()}
        self.executor_counters = {k: as_int(v) for k, v in state["executor_counters"].items()}
        self.risk_counters = {k: as_int(v) for k, v in state["risk_counters"].items()}
        self.arbs = {}
        self.orders = {}
        for a in state["open_arbs"]:
            arb = RecoveredArb(
                a["arb_id"],
                a["pair_id"],
                self.by_name(a["buy"]),
                self.by_name(a["sell"]),
                Decimal(a["edge_bps"]),
                hedging=a["hedging"],
                flatten=a.get("flatten", False),
            )
            self.arbs[arb.arb_id] = arb
            for row in a["orders"]:
                order = self.build_order(row)
                for f in row["fills"]:
                    order.record(_fill(order.client_id, f))
                self.orders[order.client_id] = order
                (arb.legs if order.purpose == Purpose.ENTRY else arb.hedges).append(order)

    def apply(self, e: Mapping[str, Any]) -> None:
        event = e["event"]
        handler = _HANDLERS.get(event)
        if handler is not None:
            handler(self, e)

    def on_arb(self, e: Mapping[str, Any]) -> None:
        arb_id = e["arb_id"]
        self.arbs[arb_id] = RecoveredArb(
            arb_id,
            e["pair_id"],
            self.by_name(e["buy"]),
            self.by_name(e["sell"]),
            Decimal(e["edge_bps"]),
            flatten=e.get("flatten", False),
        )
        self.arb_ids.add(arb_id)
        if not e.get("flatten", False):
            self.count(self.engine_counters, "opportunities")

    def on_order(self, e: Mapping[str, Any]) -> None:
        order = self.build_order(e)
        order.status = OrderStatus.SENT
        arb = self.arb(order.arb_id)
        self.orders[order.client_id] = order
        if order.purpose == Purpose.ENTRY:
            arb.legs.append(order)
            if len(arb.legs) == 1:
                self.count(self.executor_counters, "arbs")
        else:
            arb.hedges.append(order)
            flatten = order.purpose == Purpose.FLATTEN
            self.count(self.executor_counters, "flattens" if flatten else "hedges")
        self.pf.reserve(order, Decimal(e["fee_bps"]))

    def on_ack(self, e: Mapping[str, Any]) -> None:
        order = self.order(e["client_id"])
        if order.status in (OrderStatus.SENT, OrderStatus.UNKNOWN):
            order.status = OrderStatus.ACKED

    def on_fill(self, e: Mapping[str, Any]) -> None:
        order = self.orders.get(e["client_id"])
        if order is None:
            # A fill for an order of an arb that settled before (see ``arb_residual``): the
            # portfolio still takes it; the entry names everything it needs.
            order = Order(
                e["client_id"],
                e["arb_id"],
                self.instrument(e["venue"], e["symbol"]),
                Side(e["side"]),
                as_int(e["price"]),
                0,
                status=OrderStatus.FILLED,
            )
        fill = _fill(order.client_id, e)
        order.record(fill)
        self.pf.on_fill(order, fill)

    def on_done(self, e: Mapping[str, Any]) -> None:
        order = self.order(e["client_id"])
        order.status = OrderStatus(e["status"])
        order.reason = e["reason"]
        self.pf.on_done(order)

    def on_unknown(self, e: Mapping[str, Any]) -> None:
        order = self.order(e["client_id"])
        if not order.status.done:
            order.status = OrderStatus.UNKNOWN
        self.count(self.executor_counters, "unknown")
        self.count(self.executor_counters, f"unknown:{e['venue']}")

    def on_leg_failure(self, e: Mapping[str, Any]) -> None:
        self.arb(e["arb_id"]).hedging = True
        self.count(self.executor_counters, "leg_failures")

    def on_arb_done(self, e: Mapping[str, Any]) -> None:
        arb = self.arbs.pop(e["arb_id"], None)
        if arb is None:
            raise self.fail(f"arb {e['arb_id']} settled but was never opened")
        for order in arb.legs + arb.hedges:
            self.orders.pop(order.client_id, None)
        residual = as_int(e["residual_atoms"])
        if residual:
            self.exposure[e["asset"]] = self.exposure.get(e["asset"], 0) + residual
        if e.get("flatten", False):
            self.count(self.executor_counters, "flattens_done")
            return
        if residual:
            self.count(self.executor_counters, "residual_exposure")
        self.count(self.executor_counters, "arbs_done")

    def on_residual(self, e: Mapping[str, Any]) -> None:
        delta = as_int(e["delta_atoms"])
        self.exposure[e["asset"]] = self.exposure.get(e["asset"], 0) + delta
        self.count(self.executor_counters, "fills_after_settle")

    def on_dropped(self, e: Mapping[str, Any]) -> None:
        # The engine counts every drop; the executor only those it made (they have an id).
        self.count(self.engine_counters, e["reason"])
        self.count(self.engine_counters, "opportunities")
        if "arb_id" in e:
            self.count(self.executor_counters, e["reason"])

    def on_refused(self, e: Mapping[str, Any]) -> None:
        self.count(self.engine_counters, "opportunities")
        self.count(self.engine_counters, f"risk:{e['reason']}")

    def on_kill(self, e: Mapping[str, Any]) -> None:
        self.kill = (KillLevel[e["level"]], e["by"], e["why"])

    def on_counters(self, e: Mapping[str, Any]) -> None:
        self.engine_counters = {k: as_int(v) for k, v in e["engine"].items()}
        self.executor_counters = {k: as_int(v) for k, v in e["executor"].items()}
        self.risk_counters = {k: as_int(v) for k, v in e["risk"].items()}


_HANDLERS: dict[str, Callable[[_Replay, Mapping[str, Any]], None]] = {
    "arb": _Replay.on_arb,
    "order": _Replay.on_order,
    "ack": _Replay.on_ack,
    "fill": _Replay.on_fill,
    "done": _Replay.on_done,
    "unknown": _Replay.on_unknown,
    "leg_failure": _Replay.on_leg_failure,
    "arb_done": _Replay.on_arb_done,
    "arb_residual": _Replay.on_residual,
    "arb_dropped": _Replay.on_dropped,
    "risk_refused": _Replay.on_refused,
    KILL_SWITCH: _Replay.on_kill,
    COUNTERS: _Replay.on_counters,
}


def _from_last_checkpoint(directory: Path) -> Iterator[dict[str, Any]]:
    """The entries from the newest checkpoint on (or all of them if there is none).

    Files are searched newest first, so a restart reads one rotation's worth, not the whole
    history. Each file is verified as it is read; the chain across files was verified when
    the Journal opened the directory."""
    files = journal_files(directory)
    start, first_seq = 0, 0
    for i in range(len(files) - 1, -1, -1):
        seqs = [
            e["seq"] for e in read_entries([files[i]], partial=True) if e["event"] == CHECKPOINT
        ]
        if seqs:
            start, first_seq = i, as_int(seqs[-1])
            break
    return (e for e in read_entries(files[start:], partial=True) if as_int(e["seq"]) >= first_seq)


def recover(
    directory: str | Path,
    instruments: Iterable[Instrument],
    *,
    portfolio: Callable[[], Portfolio] | None = None,
) -> Recovery:
    """Rebuild the state the journal in ``directory`` ends with.

    ``instruments``: every configured instrument (entries name them by venue and symbol).
    ``portfolio``: makes the starting portfolio when the journal holds no checkpoint (a
    first start); without it such a journal is refused.
    """
    replay = _Replay({(i.venue, i.symbol): i for i in instruments})
    checkpoint_seq = 0
    replayed = 0
    entries = _from_last_checkpoint(Path(directory))
    for e in entries:
        replay.seq = as_int(e["seq"])
        replay.clock.now = _epoch_ns(e["ts"])
        try:
            if e["event"] == CHECKPOINT:
                replay.checkpoint(e)
                checkpoint_seq, replayed = replay.seq, 0
                continue
            if replay.portfolio is None and e["event"] in _HANDLERS:
                if portfolio is None:
                    raise replay.fail(f"{e['event']} entry before any checkpoint")
                replay.portfolio = portfolio()
            replay.apply(e)
            replayed += e["event"] in _HANDLERS
        except RecoveryError:
            raise
        except KeyError as exc:
            raise replay.fail(f"{e.get('event')} entry has no field {exc.args[0]!r}") from None
        except (ValueError, TypeError) as exc:
            raise replay.fail(f"{e.get('event')}: cannot apply ({exc!r})") from None
    if replay.portfolio is None:
        if portfolio is None:
            raise RecoveryError(f"{directory}: no checkpoint to recover from")
        replay.portfolio = portfolio()
    replay.clock.live = True
    kill_level, kill_by, kill_why = replay.kill
    return Recovery(
        portfolio=replay.portfolio,
        arbs=replay.arbs,
        exposure=replay.exposure,
        kill_level=kill_level,
        kill_by=kill_by,
        kill_why=kill_why,
        engine_counters=replay.engine_counters,
        executor_counters=replay.executor_counters,
        risk_counters=replay.risk_counters,
        arb_ids=replay.arb_ids,
        checkpoint_seq=checkpoint_seq,
        last_seq=replay.seq,
        replayed=replayed,
    )
