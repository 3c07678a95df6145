"""The daemon's status: one JSON-able snapshot, its multi-line text and its one-line summary.

``collect`` reads the running objects (books, pairs, risk gates, portfolio, executor, the
engine's latencies and counters) between two frames on the event loop. It is cheap and never
touches the hot path: each pair's edge is worked out here from its two books with the pair's
own calculator (``SpreadCalculator.top_edges``, top of book net of fees), and the latency
percentiles come from the most recent arbs only (sorting the engine's whole window, up to
100,000 samples, would hold the loop for milliseconds, in the way of the next tick).

The snapshot is plain JSON data (``Status``, TypedDicts all the way down): the control
socket sends it as it is and ``ctl status`` renders the reply with ``render``; the daemon's
terminal status line is ``summary``. Amounts are exact decimal text, never floats; times are
ints (ns or ms, as named); edges are informational bps text at 0.01.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Reversible
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, TypedDict

from arbengine.orders import from_atoms
from arbengine.risk import Reason

if TYPE_CHECKING:  # ``ctl status`` only renders: it need not load the engine
    from arbengine.engine import Engine, Pair
    from arbengine.venues._sync import BookSync

STATUS_VERSION = 1
LATENCY_WINDOW = 4096  # most recent arbs the percentiles are taken over
_NS_PER_MS = 1_000_000


class BookStatus(TypedDict):
    venue: str
    symbol: str
    state: str  # DOWN, SYNCING, LIVE, RESYNCING
    age_ms: int | None  # since the last frame that changed the book; None before any
    bid: str | None  # best bid / ask price, decimal text
    ask: str | None
    resyncs: int
    gaps: int
    checksum_failures: int
    last_error: str


class PairStatus(TypedDict):
    pair_id: str
    a: str  # instrument names, venue:symbol
    b: str
    live: bool  # both books (and the conversion book) LIVE
    # Top-of-book edge net of fees, bps text; None when a book is down or one-sided.
    edge_a_to_b_bps: str | None  # buy on A, sell on B
    edge_b_to_a_bps: str | None
    min_edge_bps: str
    evaluations: int
    opportunities: int
    in_flight: str | None  # the arb id the pair waits on
    last_refusal: str | None  # the gate that refused its last opportunity, if it was refused


class RiskStatus(TypedDict):
    kill_level: str  # KillLevel name
    kill_by: str  # who made the last change of the kill switch ("" if never)
    kill_why: str
    kill_wall_ns: int | None
    breakers: dict[str, str]  # venue -> closed, open, half_open
    unhealthy: list[str]
    refusals: dict[str, int]  # gate -> arbs it refused, non-zero only


class PortfolioStatus(TypedDict):
    reference: str  # the currency the values below are in
    inventory: dict[str, str]  # asset -> net change from trading, non-zero only
    exposure: dict[str, str]  # base asset -> net exposure, non-zero only
    unhedged: dict[str, str]  # base asset -> what legs and hedges left open, non-zero only
    # "venue:symbol" of a futures contract -> its open position (base) and entry value
    # (quote), signed; open ones only.
    positions: dict[str, dict[str, str]]
    exposure_value: str | None  # None when an asset has no mark yet (see ``unpriced``)
    realized_pnl: str | None
    realized_pnl_today: str | None
    equity: str | None
    drawdown: str | None
    unpriced: list[str]


class LatencyStatus(TypedDict):
    samples: int  # of the most recent arbs (at most LATENCY_WINDOW)
    p50_ns: int | None  # frame received -> both legs handed off
    p99_ns: int | None


class Status(TypedDict):
    version: int
    wall_ns: int
    books: list[BookStatus]
    pairs: list[PairStatus]
    risk: RiskStatus
    portfolio: PortfolioStatus
    latency: LatencyStatus
    open_arbs: int
    counters: dict[str, dict[str, int]]  # engine, executor


# --- collecting -----------------------------------------------------------------------------


def collect(
    engine: Engine,
    books: Iterable[BookSync] = (),
    *,
    now_ns: int | None = None,
    wall_ns: int,
) -> Status:
    """A snapshot of ``engine`` and its books: the pairs' books plus ``books`` (e.g. every
    feed's, traded or not), each once, in the order met. ``now_ns`` is on the books' receive
    clock (the engine's monotonic clock, by default)."""
    now = engine.clock() if now_ns is None else now_ns
    syncs: dict[int, BookSync] = {}
    for pair in engine.pairs:
        for s in (pair.sync_a, pair.sync_b, pair.sync_conv):
            if s is not None:
                syncs.setdefault(id(s), s)
    for s in books:
        syncs.setdefault(id(s), s)
    executor = engine.executor
    return Status(
        version=STATUS_VERSION,
        wall_ns=wall_ns,
        books=[_book(s, now) for s in syncs.values()],
        pairs=[_pair(p) for p in engine.pairs],
        risk=_risk(engine),
        portfolio=_portfolio(engine),
        latency=latency(engine.latencies_ns),
        open_arbs=executor.open_arbs(),
        counters={"engine": dict(engine.counters), "executor": dict(executor.counters)},
    )


def _price(sync: BookSync, level: tuple[int, int] | None) -> str | None:
    return None if level is None else sync.instrument.price.format(level[0])


def _book(sync: BookSync, now_ns: int) -> BookStatus:
    book = sync.book
    inst = sync.instrument
    recv = book.recv_ts_ns
    return BookStatus(
        venue=inst.venue,
        symbol=inst.symbol,
        state=sync.state_name,
        age_ms=(now_ns - recv) // _NS_PER_MS if recv else None,
        bid=_price(sync, book.best_bid()) if sync.live else None,
        ask=_price(sync, book.best_ask()) if sync.live else None,
        resyncs=sync.resyncs,
        gaps=sync.gaps,
        checksum_failures=sync.checksum_failures,
        last_error=sync.last_error,
    )


def _bps(edge: float) -> str | None:
    # An informational ratio, not an amount: shown at 0.01 bps.
    return None if math.isnan(edge) else f"{edge:.2f}"


def _pair(pair: Pair) -> PairStatus:
    cfg = pair.config
    live = pair.sync_a.live and pair.sync_b.live
    if pair.sync_conv is not None:
        live = live and pair.sync_conv.live
    edges = (math.nan, math.nan)
    if live:
        edges = pair.calc.top_edges(pair.sync_a.book, pair.sync_b.book)
    refusals = [v for v in pair.last_verdict.values() if v]
    in_flight = pair.in_flight
    return PairStatus(
        pair_id=cfg.pair_id,
        a=cfg.a.name,
        b=cfg.b.name,
        live=live,
        edge_a_to_b_bps=_bps(edges[0]),
        edge_b_to_a_bps=_bps(edges[1]),
        min_edge_bps=str(cfg.min_edge_bps),
        evaluations=pair.evaluations,
        opportunities=pair.opportunities,
        in_flight=in_flight.arb_id if in_flight is not None and in_flight.state != "done" else None,
        last_refusal=refusals[-1] if refusals else None,
    )


def _risk(engine: Engine) -> RiskStatus:
    gates = engine.gates
    if gates is None:
        return RiskStatus(
            kill_level="NONE",
            kill_by="",
            kill_why="",
            kill_wall_ns=None,
            breakers={},
            unhealthy=[],
            refusals={},
        )
    state = gates.state
    last = state.last_change
    return RiskStatus(
        kill_level=state.level.name,
        kill_by=last.by if last is not None else "",
        kill_why=last.why if last is not None else "",
        kill_wall_ns=last.wall_ns if last is not None else None,
        breakers={venue: str(b) for venue, b in state.breakers.items()},
        unhealthy=list(state.unhealthy),
        refusals={r.name: gates.counts[r] for r in Reason if r and gates.counts[r]},
    )


def _text(amount: int) -> str:
    return str(from_atoms(amount))


def _portfolio(engine: Engine) -> PortfolioStatus:
    from arbengine.portfolio import Portfolio

    pf = engine.executor.portfolio
    if not isinstance(pf, Portfolio):
        raise TypeError("status needs the executor to keep a Portfolio")
    marks = engine.marks()
    held = {asset for (_, asset), amount in pf.balances().items() if amount}
    held.update(line.asset for line in pf.ledger.asset_lines() if line.inventory)
    unpriced = sorted(held - marks.keys() - {pf.reference})

    def value(of: Callable[[Mapping[str, Decimal]], int]) -> str | None:
        try:
            return _text(of(marks))
        except KeyError:  # an asset held but never priced (``unpriced``): not a zero
            return None

    inventory = {
        line.asset: _text(line.inventory)
        for line in sorted(pf.ledger.asset_lines(), key=lambda line: line.asset)
        if line.inventory
    }
    exposure = {a: _text(pf.net_exposure(a)) for a in sorted(pf.bases()) if pf.net_exposure(a)}
    unhedged = {a: _text(n) for a, n in sorted(engine.executor.exposure.items()) if n}
    positions = {
        f"{venue}:{symbol}": {"position": _text(position), "entry": _text(entry)}
        for (venue, symbol), (position, entry) in sorted(pf.contracts().items())
        if position
    }
    return PortfolioStatus(
        reference=pf.reference,
        inventory=inventory,
        exposure=exposure,
        unhedged=unhedged,
        positions=positions,
        exposure_value=value(pf.exposure_value),
        realized_pnl=value(pf.realized_pnl),
        realized_pnl_today=value(pf.realized_pnl_today),
        # A valuation is also a sample of peak equity (Portfolio.equity): a true one.
        equity=value(pf.equity),
        drawdown=value(pf.drawdown),
        unpriced=unpriced,
    )


def latency(samples_ns: Reversible[int], window: int = LATENCY_WINDOW) -> LatencyStatus:
    """p50 and p99 (nearest rank) of the last ``window`` samples."""
    recent = list(islice(reversed(samples_ns), window))
    recent.sort()
    n = len(recent)
    if not n:
        return LatencyStatus(samples=0, p50_ns=None, p99_ns=None)
    return LatencyStatus(samples=n, p50_ns=_rank(recent, 50), p99_ns=_rank(recent, 99))


def _rank(ordered: list[int], pct: int) -> int:
    # Nearest rank: the smallest sample with at least pct % of the samples at or below it.
    return ordered[max(-(-pct * len(ordered) // 100), 1) - 1]


# --- rendering ------------------------------------------------------------------------------


def _us(ns: int | None) -> str:
    return "-" if ns is None else f"{ns // 1000} us"


def _amount(text: str | None) -> str:
    return "?" if text is None else text


def _amounts(table: Mapping[str, str]) -> str:
    return ", ".join(f"{asset} {amount}" for asset, amount in table.items()) or "-"


def _when(wall_ns: int | None) -> str:
    if wall_ns is None:
        return ""
    stamp = datetime.fromtimestamp(wall_ns // 10**9, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(rows: list[list[str]]) -> list[str]:
    """Rows of cells, columns padded to their widest cell, two spaces apart."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _kill_line(risk: RiskStatus) -> str:
    level = risk["kill_level"]
    if level == "NONE":
        return "kill switch: off"
    why = f": {risk['kill_why']}" if risk["kill_why"] else ""
    return f"kill switch: {level} by {risk['kill_by']}{why} (since {_when(risk['kill_wall_ns'])})"


def live_books(status: Status) -> tuple[int, int]:
    """(LIVE books, all books)."""
    books = status["books"]
    return sum(1 for b in books if b["state"] == "LIVE"), len(books)


def render(status: Status) -> str:
    """The multi-line text of ``ctl status``."""
    risk, pf, lat = status["risk"], status["portfolio"], status["latency"]
    live, total = live_books(status)
    lines = [_kill_line(risk), f"books ({live}/{total} live):"]
    book_rows = []
    for b in status["books"]:
        age = "-" if b["age_ms"] is None else f"{b['age_ms']} ms"
        top = f"{b['bid']} / {b['ask']}" if b["bid"] or b["ask"] else "-"
        trouble = [f"{k} {b[k]}" for k in ("resyncs", "gaps", "checksum_failures") if b[k]]
        if b["last_error"]:
            trouble.append(f"last error: {b['last_error']}")
        book_rows.append(
            [b["venue"], b["symbol"], b["state"], f"age {age}", top, ", ".join(trouble)]
        )
    lines += _table(book_rows)
    lines.append("pairs (edge net of fees, buy A sell B / buy B sell A):")
    pair_rows = []
    for p in status["pairs"]:
        edge = f"{p['edge_a_to_b_bps'] or '-'} / {p['edge_b_to_a_bps'] or '-'} bps"
        notes = []
        if p["in_flight"]:
            notes.append(f"in flight {p['in_flight']}")
        if p["last_refusal"]:
            notes.append(f"last refused: {p['last_refusal']}")
        pair_rows.append(
            [
                p["pair_id"],
                f"{p['a']} <> {p['b']}",
                edge,
                f"min {p['min_edge_bps']}",
                f"opportunities {p['opportunities']}",
                ", ".join(notes),
            ]
        )
    lines += _table(pair_rows)
    lines.append(
        f"portfolio ({pf['reference']}): realized pnl {_amount(pf['realized_pnl'])} "
        f"(today {_amount(pf['realized_pnl_today'])}), equity {_amount(pf['equity'])}, "
        f"drawdown {_amount(pf['drawdown'])}, exposure value {_amount(pf['exposure_value'])}"
    )
    lines.append(f"  exposure: {_amounts(pf['exposure'])}; unhedged: {_amounts(pf['unhedged'])}")
    lines.append(f"  inventory: {_amounts(pf['inventory'])}")
    if pf["positions"]:
        held = ", ".join(
            f"{name} {p['position']} (entry {p['entry']})" for name, p in pf["positions"].items()
        )
        lines.append(f"  futures positions: {held}")
    if pf["unpriced"]:
        lines.append(f"  no price yet for: {', '.join(pf['unpriced'])}")
    tripped = [f"{v} {s}" for v, s in risk["breakers"].items() if s != "closed"]
    tripped += [f"{v} unhealthy" for v in risk["unhealthy"]]
    refusals = ", ".join(f"{gate} {n}" for gate, n in risk["refusals"].items()) or "none"
    lines.append(f"venues: {', '.join(tripped) or 'all breakers closed, all healthy'}")
    lines.append(f"refusals by gate: {refusals}")
    lines.append(
        f"tick-to-order: p50 {_us(lat['p50_ns'])}, p99 {_us(lat['p99_ns'])} "
        f"(last {lat['samples']} arbs); open arbs {status['open_arbs']}"
    )
    for name, counters in status["counters"].items():
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counters.items()) if v) or "-"
        lines.append(f"{name} counters: {shown}")
    return "\n".join(lines)


def summary(status: Status) -> str:
    """One line for the daemon's terminal status line."""
    live, total = live_books(status)
    engine = status["counters"]["engine"]
    executor = status["counters"]["executor"]
    pf, lat = status["portfolio"], status["latency"]
    parts = [
        f"books {live}/{total} live",
        f"opportunities {engine.get('opportunities', 0)}",
        f"trades {executor.get('arbs', 0)}",
        f"pnl {_amount(pf['realized_pnl'])} {pf['reference']}",
        f"tick-to-order p50 {_us(lat['p50_ns'])} p99 {_us(lat['p99_ns'])}",
    ]
    level = status["risk"]["kill_level"]
    if level != "NONE":
        parts.append(f"KILL {level}")
    return " | ".join(parts)
