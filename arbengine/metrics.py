"""The Prometheus exporter: what the engine counts, read at scrape time, served off the loop.

House rule: hot-path modules only bump ints; formatting happens here, on the exporter's
thread, when Prometheus asks. ``MetricsCollector`` is a prometheus_client custom collector
on its own ``CollectorRegistry`` (never the global one) and reads, per scrape:

* straight from the exporter's thread, what is plain ints or dicts of ints: engine, pair,
  gate and executor counters, the kill level and breakers, book sync states and counters,
  WebSocket connection counters, journal sequence numbers and backlog, the histograms
  (``metrics_histogram``) and taps (``metrics_taps``). Dicts the loop may grow are copied
  in one C-level call (``dict(d)``, retried if a resize ever got in the way), never iterated
  while the loop runs;
* on the event loop, through one ``call_soon_threadsafe`` hop per scrape, what is not safe
  to read from another thread: the portfolio's valuation (marks from the books, equity and
  PnL, which also record the peak), ledger cells (looked up get-or-create), the gates'
  recent-event windows (deques), and the ``ArbStats`` harvest of new arbs. If the loop does
  not answer within ``loop_timeout_s`` (stalled), the scrape goes on without those and
  ``arbengine_metrics_loop_timeouts_total`` counts it.

The exporter's thread shares the GIL with the loop: a scrape renders for milliseconds,
and a loop thread that wakes meanwhile would wait up to the interpreter's switch interval
(5 ms) for it. So families are yielded to prometheus_client's renderer one at a time and
the GIL is released between them (``bench/bench_metrics.py`` shows the loop's timer
lateness while scraped). A daemon that wants less can also lower ``sys.setswitchinterval``.

A source that raises is skipped for that scrape and counted in
``arbengine_metrics_errors_total{section}``: one broken source never hides the others.

Names follow Prometheus conventions: ``arbengine_`` prefix, ``_total`` counters, ``_seconds``
histograms, labels only of bounded sets (venue, symbol, asset, pair, direction, gate, stage,
status, state, currency): never ids or prices. Amounts are exported in asset units (the
exact atoms divided once, correctly rounded, as Prometheus values are floats).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Protocol, TypeVar, cast
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _float_to_go

from arbengine import __version__
from arbengine.execution import ArbState
from arbengine.gateways.base import LiveGateway
from arbengine.journal import Journal
from arbengine.metrics_histogram import IntHistogram
from arbengine.metrics_taps import DIRECTIONS, ArbStats, OrderTap, TimedJournal
from arbengine.orders import ATOMS
from arbengine.portfolio import Portfolio
from arbengine.risk import BreakerState, Reason

if TYPE_CHECKING:
    from arbengine.engine import Engine
    from arbengine.venues._sync import BookSync
    from arbengine.venues.ws import WsFeed

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 9108
# Bucket bounds as Go prints floats, as prometheus_client writes its own (untyped there).
_go_float = cast(Callable[[float], str], _float_to_go)
_K = TypeVar("_K")
_V = TypeVar("_V")

_BOOK_STATES: Final = ("down", "syncing", "live", "resyncing")  # BookSync.state 0..3
#: BookSync.counters() key -> metric (without ``arbengine_book_`` and ``_total``), help.
_BOOK_COUNTERS: Final = (
    ("messages", "messages", "Depth messages handed to the book's sync"),
    ("applied", "updates_applied", "Updates applied to the book"),
    ("snapshots", "snapshots", "Snapshots loaded"),
    ("ignored", "messages_ignored", "Messages ignored (book down, or before its snapshot)"),
    ("buffered", "messages_buffered", "Messages buffered while waiting for a snapshot"),
    ("gaps", "gaps", "Sequence gaps detected"),
    ("checksum_failures", "checksum_failures", "Checksum mismatches"),
    ("crossed", "crossed", "Books found crossed"),
    ("parse_errors", "parse_errors", "Messages that failed to parse"),
    ("stale_snapshots", "stale_snapshots", "Snapshots older than the buffered updates"),
    ("resyncs", "resyncs", "Times the book left LIVE to resync"),
)
#: FeedCounters field -> metric (without ``arbengine_feed_`` and ``_total``), help.
_FEED_COUNTERS: Final = (
    ("connects", "connects", "WebSocket connections established"),
    ("reconnects", "reconnects", "Connections established after the first"),
    ("failed_connects", "failed_connects", "Connection attempts that failed"),
    ("silent_closes", "silent_closes", "Connections closed for silence past the heartbeat"),
    ("frames", "frames_received", "Data frames received"),
    ("bytes", "received_bytes", "Payload bytes received"),
    ("handler_errors", "handler_errors", "Frames whose handler raised"),
    ("pings", "pings", "Application-level pings sent"),
    ("sent", "frames_sent", "Frames sent through the send rate limit"),
    ("send_waits", "send_waits", "Frames that waited for the send rate limit"),
)
#: Live gateway counter (gateways.base.GatewayCounters) -> metric, help.
_GATEWAY_COUNTERS: Final = (
    ("submitted", "orders_submitted", "Orders handed to the live gateway"),
    ("ws_sent", "ws_orders", "Orders written to the venue's order WebSocket"),
    ("rest_sent", "rest_requests", "Order placements sent over REST (re-sends included)"),
    ("retries", "retries", "Re-sends of an order whose outcome was not known, same client id"),
    ("rejects", "rejects", "Orders the venue (or a rate-limit wait) refused"),
    ("unknown", "unknown_outcomes", "Placements left without an answer after the retries"),
    ("rate_limited", "rate_limited", "429/418 and the venue's rate-limit codes met"),
    ("usage_pauses", "usage_pauses", "Sends paused because the venue's usage counters were full"),
    ("clock_resyncs", "clock_resyncs", "Server-time syncs after a timestamp was refused"),
    ("queries", "queries", "Order state queries by client id"),
)
#: Executor counter -> metric, help.
_EXECUTOR_COUNTERS: Final = (
    ("arbs", "arbengine_arbs_opened_total", "Arbs whose legs were handed to the gateways"),
    ("arbs_done", "arbengine_arbs_settled_total", "Arbs settled (every order final)"),
    ("leg_failures", "arbengine_leg_failures_total", "Arbs whose legs filled unequally"),
    ("hedges", "arbengine_hedges_total", "Hedge orders sent (unwind or chase)"),
    (
        "residual_exposure",
        "arbengine_arbs_left_exposure_total",
        "Arbs settled with a residual left unhedged",
    ),
    ("duplicate_fills", "arbengine_duplicate_fills_total", "Fills reported twice (ignored)"),
    (
        "fills_after_settle",
        "arbengine_fills_after_settle_total",
        "Fills reported after their arb settled",
    ),
    ("flattens", "arbengine_flatten_orders_total", "Orders the FLATTEN kill level sent"),
)


#: The parts of a scrape that fail alone (``arbengine_metrics_errors_total{section}``).
SECTIONS: Final = (
    "build",
    "engine",
    "arbs",
    "risk",
    "executor",
    "orders",
    "books",
    "feeds",
    "journal",
    "loop",
    "portfolio",
    "valuation",
)


class MetricsError(Exception):
    """The exporter cannot start (bad address, port taken): one line for the operator."""


class FeedView(Protocol):
    """What the exporter reads of a venue feed (``venues.feed.VenueFeed``)."""

    @property
    def syncs(self) -> Sequence[BookSync]: ...

    @property
    def ws(self) -> WsFeed: ...


@dataclass
class MetricSources:
    """Everything the exporter reads; the daemon builds it, tests build it from a rig.

    The gates, executor and portfolio are the engine's own; so is the journal unless
    ``journal`` names one (a ``TimedJournal`` adds write and fsync latency). ``feeds``: the
    venue feeds (their books and connections); ``books``: books kept without a feed (tests
    drive them by hand). ``orders``: the ``OrderTap`` wired in front of the executor, if any.
    ``arb_stats``: the latency/edge statistics; made here when not given, and fed by
    ``harvest`` at every scrape unless ``harvest_arbs`` is False (when the engine calls
    ``ArbStats.observe`` itself). ``loop_lag``: the event loop's latest lag in seconds.
    ``clock``: the monotonic ns clock the books' receive stamps come from. ``build``: extra
    ``arbengine_build_info`` labels (a commit, the trading mode).
    """

    engine: Engine
    feeds: Sequence[FeedView] = ()
    books: Sequence[BookSync] = ()
    orders: OrderTap | None = None
    journal: Journal | None = None
    arb_stats: ArbStats | None = None
    harvest_arbs: bool = True
    loop_lag: Callable[[], float] | None = None
    clock: Callable[[], int] = time.monotonic_ns
    build: Mapping[str, str] = field(default_factory=dict)
    gateways: Mapping[str, LiveGateway] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arb_stats is None:
            self.arb_stats = ArbStats(self.engine.pairs)
        if self.journal is None:
            self.journal = self.engine.journal

    def all_books(self) -> list[BookSync]:
        books = list(self.books)
        for feed in self.feeds:
            books.extend(feed.syncs)
        return books


@dataclass(frozen=True, slots=True)
class Valuation:
    """The portfolio valued at the books' marks, in reference atoms."""

    equity: int
    peak: int
    drawdown: int
    realized: int
    realized_today: int
    exposure_value: int
    marks: tuple[tuple[str, Decimal], ...]


@dataclass(frozen=True, slots=True)
class LoopState:
    """What the event loop hands the exporter per scrape (see the module docstring)."""

    reference: str
    balances: tuple[tuple[str, str, int, int], ...]  # venue, asset, balance, available
    inventory: tuple[tuple[str, int], ...]  # asset, atoms (every asset held or traded)
    bases: tuple[tuple[str, int, int, int], ...]  # base asset, net exposure, open buy/sell
    open_orders: tuple[tuple[str, int], ...]  # venue, orders holding a reservation
    recent: tuple[tuple[str, str, int], ...]  # venue, kind, count in the health window
    valuation: Valuation | None


def _copy(d: Mapping[_K, _V]) -> dict[_K, _V]:
    """A copy of a dict another thread may be changing. ``dict(d)`` copies in C without
    running Python code, so the loop cannot run in between; the retry covers a resize
    that a garbage-collection pause could still let in."""
    for _ in range(100):
        try:
            return dict(d)
        except RuntimeError:
            continue
    return dict(d)


def _units(atoms: int) -> float:
    return float(atoms / ATOMS)  # int / int: correctly rounded


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def _histogram(
    name: str,
    doc: str,
    labels: Sequence[str],
    items: Iterable[tuple[Sequence[str], IntHistogram]],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, hist in items:
        snap = hist.snapshot()
        scale = hist.scale
        buckets: list[tuple[str, float]] = [
            (_go_float(bound / scale), count)
            for bound, count in zip(snap.bounds, snap.cumulative, strict=True)
        ]
        buckets.append(("+Inf", snap.count))
        family.add_metric(list(values), buckets, snap.sum / scale)
    return family


class MetricsCollector(Collector):
    """The custom collector (see the module docstring). Until ``bind_loop`` names the
    event loop the engine runs on, everything is read on the calling thread (which must
    then be the loop's, or no loop runs)."""

    def __init__(self, sources: MetricSources, *, loop_timeout_s: float = 1.0) -> None:
        if loop_timeout_s <= 0:
            raise ValueError(f"loop_timeout_s must be positive, got {loop_timeout_s}")
        self.sources = sources
        self.loop_timeout_s = loop_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._lock = threading.Lock()
        # Every section at zero from the start: a rate over them is defined before a failure.
        self.errors: dict[str, int] = dict.fromkeys(SECTIONS, 0)
        self.last_error = ""
        self.loop_timeouts = 0

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None, thread_id: int = 0) -> None:
        """Read loop-owned state through ``loop`` (whose thread is ``thread_id``)."""
        self._loop = loop
        self._loop_thread = 0 if loop is None else thread_id or threading.get_ident()

    def describe(self) -> Iterable[Metric]:
        return ()  # names are not registered up front: the registry is ours alone

    def collect(self) -> Iterator[Metric]:
        state = self._loop_state()
        # Off the loop's thread, hand the GIL to the loop between families: otherwise it
        # waits up to the interpreter's switch interval (5 ms) behind a whole scrape.
        polite = self._loop is not None and threading.get_ident() != self._loop_thread
        sections: tuple[tuple[str, Callable[[], list[Metric]]], ...] = (
            ("build", self._build),
            ("engine", self._engine),
            ("arbs", self._arbs),
            ("risk", lambda: self._risk(state)),
            ("executor", self._executor),
            ("orders", lambda: self._orders(state)),
            ("books", self._books),
            ("feeds", self._feeds),
            ("gateways", self._gateways),
            ("journal", self._journal),
            ("loop", self._event_loop),
            ("portfolio", lambda: self._portfolio(state)),
        )
        for name, section in sections:
            try:
                families = section()
            except Exception as exc:  # one broken source must not hide the others
                self._error(name, exc)
                continue
            for family in families:
                yield family  # rendered by prometheus_client before the next is asked for
                if polite:
                    time.sleep(0)  # releases the GIL
        yield from self._self_metrics()

    def _error(self, section: str, exc: BaseException) -> None:
        with self._lock:
            self.errors[section] = self.errors.get(section, 0) + 1
            self.last_error = f"{section}: {type(exc).__name__}: {exc}"

    # -- the loop hop --------------------------------------------------------------------

    def _loop_state(self) -> LoopState | None:
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            return self._read_loop_state()
        future: concurrent.futures.Future[LoopState | None] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():  # False: the scrape gave up
                future.set_result(self._read_loop_state())

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop is closed: nothing left to read there
            return None
        try:
            return future.result(self.loop_timeout_s)
        except TimeoutError:
            future.cancel()
            with self._lock:
                self.loop_timeouts += 1
            return None

    def _read_loop_state(self) -> LoopState | None:
        """On the loop. Never raises: a failure is counted and that part left out."""
        src = self.sources
        if src.harvest_arbs and src.arb_stats is not None:
            try:
                src.arb_stats.add_pairs(src.engine.pairs)
                src.arb_stats.harvest(src.engine.executor.arbs)
            except Exception as exc:
                self._error("arbs", exc)
        try:
            return self._portfolio_state()
        except Exception as exc:
            self._error("portfolio", exc)
            return None

    def _portfolio_state(self) -> LoopState | None:
        engine = self.sources.engine
        pf = engine.executor.portfolio
        gates = engine.gates
        recent: list[tuple[str, str, int]] = []
        if gates is not None:
            for venue in gates.limits.venues:
                for kind, n in gates.recent(venue.name).items():
                    recent.append((venue.name, kind, n))
        if not isinstance(pf, Portfolio):
            return LoopState("", (), (), (), (), tuple(recent), None)
        balances = pf.balances()
        limits = () if gates is None else gates.limits.venues
        venues = sorted({v for v, _ in balances} | {v.name for v in limits})
        assets = sorted({a for _, a in balances} | pf.bases())
        valuation = None
        try:
            marks = engine.marks()
            valuation = Valuation(
                equity=pf.equity(marks),
                peak=pf.peak_equity or 0,
                drawdown=pf.drawdown(marks),
                realized=pf.realized_pnl(marks),
                realized_today=pf.realized_pnl_today(marks),
                exposure_value=pf.exposure_value(marks),
                marks=tuple(sorted(marks.items())),
            )
        except KeyError as exc:  # an asset held with no book to price it
            self._error("valuation", exc)
        return LoopState(
            reference=pf.reference,
            balances=tuple(
                (v, a, amount, pf.available(v, a)) for (v, a), amount in sorted(balances.items())
            ),
            inventory=tuple((a, pf.inventory(a)) for a in assets),
            bases=tuple((a, pf.net_exposure(a), *pf.in_flight(a)) for a in sorted(pf.bases())),
            open_orders=tuple((v, pf.open_orders(v)) for v in venues),
            recent=tuple(recent),
            valuation=valuation,
        )

    # -- sections (each builds its families whole, or raises) ------------------------------

    def _build(self) -> list[Metric]:
        labels = {
            "version": __version__,
            "python": platform.python_version(),
            **self.sources.build,
        }
        info = _gauge("arbengine_build_info", "Build information (always 1)", list(labels))
        info.add_metric(list(labels.values()), 1)
        return [info]

    def _engine(self) -> list[Metric]:
        engine = self.sources.engine
        counters = _copy(engine.counters)
        evaluations = _counter(
            "arbengine_pair_evaluations_total", "Spread evaluations after a book change", ["pair"]
        )
        opportunities = _counter(
            "arbengine_opportunities_total",
            "Opportunities found (an edge over the pair's minimum, before the risk gates)",
            ["pair", "direction"],
        )
        edge = _gauge(
            "arbengine_pair_top_edge_bps",
            "Net top-of-book edge at the pair's last evaluation, bps (fees included)",
            ["pair", "direction"],
        )
        in_flight = _gauge(
            "arbengine_pair_arb_in_flight", "1 while the pair has an arb in flight", ["pair"]
        )
        for pair in tuple(engine.pairs):
            pid = pair.config.pair_id
            evaluations.add_metric([pid], pair.evaluations)
            for direction, found in zip(DIRECTIONS, pair.found, strict=True):
                opportunities.add_metric([pid, direction], found)
            for direction, entry in zip(DIRECTIONS, pair.results, strict=True):
                value = entry[1].top_edge_bps  # (direction, result, ...)
                if not math.isnan(value):
                    edge.add_metric([pid, direction], value)
            arb = pair.in_flight
            in_flight.add_metric([pid], 0 if arb is None or arb.state is ArbState.DONE else 1)
        past_budget = _counter(
            "arbengine_arbs_past_budget_total",
            "Arbs dropped because the order budget from their frame had passed",
        )
        past_budget.add_metric([], counters.get("past_budget", 0))
        marks_missing = _counter(
            "arbengine_marks_missing_total", "Risk refreshes that found an asset with no mark"
        )
        marks_missing.add_metric([], counters.get("marks_missing", 0))
        return [evaluations, opportunities, edge, in_flight, past_budget, marks_missing]

    def _arbs(self) -> list[Metric]:
        stats = self.sources.arb_stats
        if stats is None:
            return []
        by_pair = sorted(_copy(stats.by_pair).items())
        arbs = _counter(
            "arbengine_arbs_total", "Arbs sent, by pair and direction", ["pair", "direction"]
        )
        for (pid, direction), s in by_pair:
            arbs.add_metric([pid, direction], s.arbs)
        return [
            arbs,
            _histogram(
                "arbengine_arb_edge_bps",
                "Net edge of the arbs sent, bps",
                ["pair", "direction"],
                ((key, s.edge) for key, s in by_pair),
            ),
            _histogram(
                "arbengine_tick_to_order_seconds",
                "From the triggering frame's receipt to the last leg handed to its gateway",
                [],
                [((), stats.tick_to_order)],
            ),
            _histogram(
                "arbengine_stage_latency_seconds",
                "Engine stages per arb: frame->book applied (book), ->opportunity found "
                "(detect), ->risk passed (risk), ->last leg handed off (handoff)",
                ["stage"],
                (((name,), hist) for name, hist in stats.stages.items()),
            ),
        ]

    def _risk(self, state: LoopState | None) -> list[Metric]:
        gates = self.sources.engine.gates
        if gates is None:
            return []
        counts = list(gates.counts)
        rejections = _counter(
            "arbengine_risk_rejections_total", "Orders refused by the risk gates", ["gate"]
        )
        for reason in Reason:
            if reason is not Reason.OK:
                rejections.add_metric([reason.name.lower()], counts[reason])
        passed = _counter("arbengine_risk_passes_total", "Orders the risk gates let through")
        passed.add_metric([], counts[Reason.OK])
        level = gates.level
        kill = _gauge(
            "arbengine_kill_level",
            "Kill switch level: 0 none, 1 halt_new, 2 reduce_only, 3 flatten",
        )
        kill.add_metric([], int(level))
        changes = _counter("arbengine_kill_switch_changes_total", "Kill switch level changes")
        changes.add_metric([], len(gates.history))
        risk_state = gates.state
        breaker = _gauge(
            "arbengine_venue_breaker_state",
            "Circuit breaker per venue (1 for the state it is in)",
            ["venue", "state"],
        )
        healthy = _gauge(
            "arbengine_venue_healthy", "1 while the venue is healthy (0: no new arbs)", ["venue"]
        )
        for venue, current in sorted(risk_state.breakers.items()):
            for st in BreakerState:
                breaker.add_metric([venue, st.value], 1 if st is current else 0)
            healthy.add_metric([venue], 0 if venue in risk_state.unhealthy else 1)
        limits = gates.limits
        exposure_limit = _gauge(
            "arbengine_net_exposure_limit",
            "Limit on the net exposure per asset, asset units",
            ["asset"],
        )
        for asset, value in sorted(limits.max_net_exposure.items()):
            exposure_limit.add_metric([asset], float(Decimal(value)))
        inventory_limit = _gauge(
            "arbengine_inventory_limit", "Limit on the inventory per asset, asset units", ["asset"]
        )
        for asset, value in sorted(limits.max_inventory.items()):
            inventory_limit.add_metric([asset], float(Decimal(value)))
        out: list[Metric] = [
            rejections,
            passed,
            kill,
            changes,
            breaker,
            healthy,
            exposure_limit,
            inventory_limit,
        ]
        if state is not None:
            recent = _gauge(
                "arbengine_venue_recent_events",
                "Rejects, timeouts and resyncs of the venue within its health window",
                ["venue", "kind"],
            )
            for venue, kind, n in state.recent:
                recent.add_metric([venue, kind], n)
            out.append(recent)
            if state.reference:
                loss = _gauge(
                    "arbengine_daily_loss_limit",
                    "Realized loss per UTC day that trips the kill switch",
                    ["currency"],
                )
                loss.add_metric([state.reference], float(Decimal(limits.max_daily_loss)))
                drawdown = _gauge(
                    "arbengine_drawdown_limit",
                    "Drawdown from peak equity that trips the kill switch",
                    ["currency"],
                )
                drawdown.add_metric([state.reference], float(Decimal(limits.max_drawdown)))
                out += [loss, drawdown]
        return out

    def _executor(self) -> list[Metric]:
        executor = self.sources.engine.executor
        counters = _copy(executor.counters)
        out: list[Metric] = []
        for key, name, doc in _EXECUTOR_COUNTERS:
            family = _counter(name, doc)
            family.add_metric([], counters.get(key, 0))
            out.append(family)
        open_arbs = _gauge("arbengine_arbs_open", "Arbs with orders or hedges still in flight")
        open_arbs.add_metric([], executor.open_arbs())
        unhedged = _gauge(
            "arbengine_unhedged_exposure",
            "Residual left unhedged by settled arbs, per base asset, asset units",
            ["asset"],
        )
        left = _copy(executor.exposure)
        for pair in tuple(self.sources.engine.pairs):  # every traded base, at zero before any
            left.setdefault(pair.config.a.base, 0)
        for asset, atoms in sorted(left.items()):
            unhedged.add_metric([asset], _units(atoms))
        unknown = _counter(
            "arbengine_orders_unknown_total",
            "Orders with no final state in time (possible exposure until the venue answers)",
            ["venue"],
        )
        by_venue = {
            inst.venue: 0  # every traded venue, at zero before any
            for pair in tuple(self.sources.engine.pairs)
            for inst in (pair.config.a, pair.config.b)
        }
        for key, n in counters.items():
            if key.startswith("unknown:"):
                by_venue[key[len("unknown:") :]] = n
        for venue, n in sorted(by_venue.items()):
            unknown.add_metric([venue], n)
        return [*out, open_arbs, unhedged, unknown]

    def _orders(self, state: LoopState | None) -> list[Metric]:
        out: list[Metric] = []
        if state is not None and state.open_orders:
            open_orders = _gauge(
                "arbengine_orders_open",
                "Orders holding a reservation (in flight, acked or unknown)",
                ["venue"],
            )
            for venue, n in state.open_orders:
                open_orders.add_metric([venue], n)
            out.append(open_orders)
        tap = self.sources.orders
        if tap is None:
            return out
        done = _counter(
            "arbengine_orders_total",
            "Orders that reached a final state, by venue and status",
            ["venue", "status"],
        )
        for (venue, status), n in sorted(_copy(tap.done).items()):
            done.add_metric([venue, status], n)
        acks = _counter("arbengine_order_acks_total", "Orders the venue acknowledged", ["venue"])
        for venue, n in sorted(_copy(tap.acks).items()):
            acks.add_metric([venue], n)
        fills = _counter("arbengine_fills_total", "Fills received", ["venue"])
        for venue, n in sorted(_copy(tap.fills).items()):
            fills.add_metric([venue], n)
        resolved = _counter(
            "arbengine_orders_unknown_resolved_total",
            "Orders that reached a final state after having been unknown",
            ["venue"],
        )
        for venue, n in sorted(_copy(tap.unknown_resolved).items()):
            resolved.add_metric([venue], n)
        ack_latency = _histogram(
            "arbengine_order_ack_latency_seconds",
            "From an order handed to its gateway to the venue's ack",
            ["venue"],
            (((venue,), h) for venue, h in sorted(_copy(tap.ack_latency).items())),
        )
        return [*out, done, acks, fills, resolved, ack_latency]

    def _books(self) -> list[Metric]:
        books = self.sources.all_books()
        now = self.sources.clock()
        labels = ["venue", "symbol"]
        state = _gauge(
            "arbengine_book_state", "Book sync state (1 for the state it is in)", [*labels, "state"]
        )
        live = _gauge("arbengine_book_live", "1 while the book is LIVE (usable)", labels)
        age = _gauge(
            "arbengine_book_age_seconds", "Time since the book's last update was received", labels
        )
        counters = [
            (key, _counter(f"arbengine_book_{name}_total", doc, labels))
            for key, name, doc in _BOOK_COUNTERS
        ]
        for sync in books:
            inst = sync.instrument
            ids = [inst.venue, inst.symbol]
            current = sync.state
            for i, name in enumerate(_BOOK_STATES):
                state.add_metric([*ids, name], 1 if i == current else 0)
            live.add_metric(ids, 1 if sync.live else 0)
            recv = sync.book.recv_ts_ns
            if recv > 0:
                age.add_metric(ids, max(0, now - recv) / 1e9)
            values = sync.counters()
            for key, family in counters:
                family.add_metric(ids, values[key])
        return [state, live, age, *(family for _, family in counters)]

    def _feeds(self) -> list[Metric]:
        feeds = tuple(self.sources.feeds)
        if not feeds:
            return []
        now = time.monotonic_ns()  # WsFeed stamps frames with the real monotonic clock
        totals: dict[str, dict[str, int]] = {}
        connected: dict[str, int] = {}
        last_frame: dict[str, int] = {}
        for feed in feeds:
            syncs = feed.syncs
            ws = feed.ws
            venue = syncs[0].instrument.venue if syncs else ws.name
            row = totals.setdefault(venue, dict.fromkeys((k for k, _, _ in _FEED_COUNTERS), 0))
            c = ws.counters
            for key, _, _ in _FEED_COUNTERS:
                row[key] += getattr(c, key)
            connected[venue] = connected.get(venue, 0) + (1 if ws.connected else 0)
            if ws.connected and ws.last_frame_mono_ns:
                last_frame[venue] = max(last_frame.get(venue, 0), ws.last_frame_mono_ns)
        up = _gauge("arbengine_feed_connected", "Venue WebSocket connections up", ["venue"])
        silence = _gauge(
            "arbengine_feed_last_frame_age_seconds",
            "Time since the venue's freshest connection last received a frame",
            ["venue"],
        )
        families = [
            (key, _counter(f"arbengine_feed_{name}_total", doc, ["venue"]))
            for key, name, doc in _FEED_COUNTERS
        ]
        for venue in sorted(totals):
            up.add_metric([venue], connected[venue])
            if venue in last_frame:
                silence.add_metric([venue], max(0, now - last_frame[venue]) / 1e9)
            for key, family in families:
                family.add_metric([venue], totals[venue][key])
        return [up, silence, *(family for _, family in families)]

    def _gateways(self) -> list[Metric]:
        gateways = _copy(self.sources.gateways)
        if not gateways:
            return []
        families = [
            (key, _counter(f"arbengine_gateway_{name}_total", doc, ["venue"]))
            for key, name, doc in _GATEWAY_COUNTERS
        ]
        offset = _gauge(
            "arbengine_gateway_clock_offset_seconds",
            "The venue's clock minus ours, from the last server-time sync",
            ["venue"],
        )
        ws_up = _gauge(
            "arbengine_gateway_order_ws_ready",
            "Order WebSocket logged in and usable (0: orders go over REST)",
            ["venue"],
        )
        blocked = _gauge(
            "arbengine_gateway_blocked_seconds",
            "Seconds left of a rate-limit wait the venue asked for (0: sending)",
            ["venue"],
        )
        codes = _counter(
            "arbengine_gateway_reject_codes_total",
            "Refusals by the venue's error code",
            ["venue", "code"],
        )
        for venue in sorted(gateways):
            gw = gateways[venue]
            c = gw.counters
            for key, family in families:
                family.add_metric([venue], getattr(c, key))
            offset.add_metric([venue], gw.offset_ms / 1000)
            if gw.ws_url is not None:
                ws_up.add_metric([venue], 1 if gw.ws_ready else 0)
            blocked.add_metric([venue], gw.blocked_for_s())
            for code, n in sorted(_copy(c.reject_codes).items()):
                codes.add_metric([venue, code], n)
        return [*(family for _, family in families), offset, ws_up, blocked, codes]

    def _journal(self) -> list[Metric]:
        journal = self.sources.journal or self.sources.engine.journal
        last = _gauge("arbengine_journal_last_seq", "Sequence number of the last entry written")
        last.add_metric([], journal.last_seq)
        durable = _gauge(
            "arbengine_journal_durable_seq", "Sequence number of the last entry on disk (fsynced)"
        )
        durable.add_metric([], journal.durable_seq)
        backlog = _gauge("arbengine_journal_backlog_entries", "Entries written, not yet on disk")
        backlog.add_metric([], journal.backlog)
        failed = _gauge("arbengine_journal_failed", "1 once the journal's writer has failed")
        failed.add_metric([], 0 if journal.error is None else 1)
        out: list[Metric] = [last, durable, backlog, failed]
        if isinstance(journal, TimedJournal):
            timings = journal.timings
            out.append(
                _histogram(
                    "arbengine_journal_write_seconds",
                    "Inline journal write (redact, check, chain, hash, queue) on the caller",
                    [],
                    [((), timings.write)],
                )
            )
            out.append(
                _histogram(
                    "arbengine_journal_fsync_seconds",
                    "fsync of a batch of journal entries, on the writer thread",
                    [],
                    [((), timings.fsync_latency)],
                )
            )
        return out

    def _event_loop(self) -> list[Metric]:
        lag = self.sources.loop_lag
        if lag is None:
            return []
        family = _gauge(
            "arbengine_event_loop_lag_seconds", "How late the event loop ran its latest check"
        )
        family.add_metric([], float(lag()))
        return [family]

    def _portfolio(self, state: LoopState | None) -> list[Metric]:
        if state is None or not state.reference:
            return []
        balance = _gauge(
            "arbengine_balance", "Balance per venue and asset, asset units", ["venue", "asset"]
        )
        available = _gauge(
            "arbengine_available_balance",
            "Balance less the reservations of open orders, asset units",
            ["venue", "asset"],
        )
        for venue, asset, amount, free in state.balances:
            balance.add_metric([venue, asset], _units(amount))
            available.add_metric([venue, asset], _units(free))
        inventory = _gauge(
            "arbengine_inventory",
            "Net change of the asset from trading over every venue, asset units",
            ["asset"],
        )
        for asset, atoms in state.inventory:
            inventory.add_metric([asset], _units(atoms))
        exposure = _gauge(
            "arbengine_net_exposure",
            "Unhedged amount of the base asset from fills, asset units (the gates' limit)",
            ["asset"],
        )
        in_flight = _gauge(
            "arbengine_in_flight",
            "Base asset open orders may still buy or sell, asset units",
            ["asset", "side"],
        )
        for asset, net, buying, selling in state.bases:
            exposure.add_metric([asset], _units(net))
            in_flight.add_metric([asset, "buy"], _units(buying))
            in_flight.add_metric([asset, "sell"], _units(selling))
        out: list[Metric] = [balance, available, inventory, exposure, in_flight]
        val = state.valuation
        valued = _gauge("arbengine_valuation_ok", "1 when every held asset could be valued")
        valued.add_metric([], 0 if val is None else 1)
        out.append(valued)
        if val is None:
            return out
        cur = [state.reference]
        for name, doc, atoms in (
            ("arbengine_equity", "Everything held on every venue, marked", val.equity),
            ("arbengine_peak_equity", "Highest equity valued so far", val.peak),
            ("arbengine_drawdown", "Peak equity less current equity", val.drawdown),
            ("arbengine_realized_pnl", "Realized PnL since the start, fees included", val.realized),
            (
                "arbengine_realized_pnl_today",
                "Realized PnL of the current UTC day, fees included",
                val.realized_today,
            ),
            (
                "arbengine_exposure_value",
                "Gross value of the net exposure of every base asset",
                val.exposure_value,
            ),
        ):
            family = _gauge(name, f"{doc}, in the reference currency", ["currency"])
            family.add_metric(cur, _units(atoms))
            out.append(family)
        marks = _gauge(
            "arbengine_mark_price",
            "Price of the asset in the reference currency (mid of a LIVE book)",
            ["asset", "currency"],
        )
        for asset, mark in val.marks:
            marks.add_metric([asset, state.reference], float(mark))
        out.append(marks)
        return out

    def _self_metrics(self) -> list[Metric]:
        with self._lock:
            errors = dict(self.errors)
            timeouts = self.loop_timeouts
        family = _counter(
            "arbengine_metrics_errors_total",
            "Scrapes where a source raised (that part was left out)",
            ["section"],
        )
        for section, n in sorted(errors.items()):
            family.add_metric([section], n)
        hop = _counter(
            "arbengine_metrics_loop_timeouts_total",
            "Scrapes the event loop did not answer in time (loop-owned figures left out)",
        )
        hop.add_metric([], timeouts)
        return [family, hop]


class MetricsExporter:
    """Serves ``MetricsCollector`` over HTTP from its own threads (prometheus_client's WSGI
    server), on ``host:port`` (127.0.0.1:9108 by default; port 0 picks a free one).

    ``start`` on the event loop (it binds the loop for the loop-owned figures), ``stop``
    when done. ``scrape()`` renders the exposition text without HTTP."""

    def __init__(
        self,
        sources: MetricSources,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        loop_timeout_s: float = 1.0,
        process_metrics: bool = True,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise MetricsError(f"metrics: listen host must be a non-empty string, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise MetricsError(f"metrics: listen port must be an int in 0..65535, got {port!r}")
        if not loop_timeout_s > 0:
            raise MetricsError(f"metrics: loop_timeout_s must be positive, got {loop_timeout_s}")
        self.host = host
        self.port = port
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = MetricsCollector(sources, loop_timeout_s=loop_timeout_s)
        self.registry.register(self.collector)
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the running event loop (if any) and start serving; MetricsError (one line)
        if the address cannot be used."""
        if self._server is not None:
            raise MetricsError("metrics: exporter already started")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self.collector.bind_loop(loop)
        try:
            server, thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(
                f"metrics: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self._server, self._thread = server, thread
        self.port = server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    def stop(self) -> None:
        """Stop serving (idempotent); waits for the server thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self.collector.bind_loop(None)
