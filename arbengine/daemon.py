"""``arbengine run``: the daemon that wires config, feeds, engine, journal and operations.

Startup, in order (each step's STATUS= goes to the service manager):

1. the config, already loaded and validated by the caller (``main``): a broken one never
   gets here;
2. the journal (``journal.directory``), and the state it holds: a journal with a checkpoint
   is replayed (``recovery.recover``) and the engine adopts it (open orders asked of their
   venues, inventory, PnL, exposure, counters and kill switch as they were); an empty one
   starts from the config's paper balances;
3. the simulators of ``simulator:`` (loopback venues; they die with the process), the feeds,
   the live venues' order gateways (credentials resolved, clock synced, order socket
   opened: a missing credential or an unreachable venue is a one-line error, exit 1), the
   control socket (status answers from here on) and the metrics exporter;
4. wait until every enabled pair's books are LIVE (``engine.live_timeout_s``; exit 1 past
   it), naming the books still awaited;
5. reconcile with the venues: a paper venue's account *is* the portfolio (the config's
   paper balances on a first start, the journal's recovered state after a restart); each
   live venue is asked for its balances and open orders (``reconcile``): leftover orders
   are cancelled or adopted, the portfolio's balances there are set to the venue's, and a
   venue that cannot be reached stops the start (exit 1). Live venues are reconciled again
   every ``reconcile.interval_s``; a balance drift holds the venue out of new arbs;
6. trade: the engine is hooked to the feeds, READY=1 is sent, the watchdog starts pinging
   (only while the loop's lag is low and the journal's writer thread is alive).

SIGTERM or SIGINT: the kill switch goes to HALT_NEW by "daemon" (journaled), open arbs get
``engine.drain_s`` to settle (paper IOC orders end by themselves; their hedges too),
STOPPING=1, a checkpoint, then feeds, executor, control socket, exporter and simulators
stop, and the journal is flushed, fsynced and closed; exit 0. A second signal cuts the
drain short (what is open is recovered at the next start). If the switch was down when the
stop began it is lowered again after the drain, so the next start trades; an operator's
pause survives a restart.

SIGHUP and ``ctl reload`` re-read the config file: see ``_reload`` and ``daemon_reload``.
An exception escaping a task or callback is logged as one line and raises the kill switch
to HALT_NEW; the daemon keeps running (feeds reconnect by themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from arbengine import config_build as build
from arbengine._core.book import Book
from arbengine._core.instrument import Instrument
from arbengine.busy_poll import BusyPoll
from arbengine.config import DEMO_NAME, ConfigError, diff, load, load_demo
from arbengine.config_schema import Config, Mode, VenueKind
from arbengine.control import (
    Action,
    ControlError,
    ControlServer,
    ControlSocketError,
    EngineControl,
    ReloadResult,
)
from arbengine.daemon_log import DaemonLog
from arbengine.daemon_reload import Wiring, build_engine, build_gates, build_pairs, rewire
from arbengine.engine import Engine
from arbengine.execution import Executor
from arbengine.gateways.base import LiveGateway
from arbengine.gateways.registry import GatewayBuildError, build_live_gateway
from arbengine.journal import Journal, JournalError
from arbengine.loop_health import LoopLag
from arbengine.metrics import MetricsError, MetricsExporter, MetricSources
from arbengine.metrics_taps import OrderTap, TimedJournal
from arbengine.orders import Gateway
from arbengine.portfolio import Portfolio
from arbengine.reconcile import ReconcileError, Reconciler, start_gateway
from arbengine.recovery import RecoveryError, recover
from arbengine.risk import KillLevel
from arbengine.sdnotify import Notifier, Watchdog
from arbengine.status import collect, live_books, summary
from arbengine.venues.feed import VenueFeed
from arbengine.venues.paper import PaperGateway

__all__ = ["BY", "Daemon", "StartupError", "main"]

BY = "daemon"  # who the daemon's own kill-switch changes and reloads are journaled as
QUIESCE_S = 5.0  # a reload waits this long for a moment with no arb open
STOP_GRACE_S = 2.0  # after a second signal: what is left of each stop step's wait


class StartupError(Exception):
    """The daemon cannot start (journal in use, socket taken, books never LIVE): one line."""


def ensure_socket_dir(path: Path) -> None:
    """Make the control socket's directory if missing (mode 0700: only this user reaches
    the socket), and refuse the per-user default in /tmp when another user could have
    planted it (not ours, or open to others)."""
    parent = path.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(parent)
    except OSError as exc:
        raise StartupError(f"control socket directory {parent}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"control socket directory {parent}: not a directory")
    uid = os.getuid()
    if parent == Path(f"/tmp/arbengine-{uid}") and (st.st_uid != uid or st.st_mode & 0o077):
        raise StartupError(
            f"control socket directory {parent}: must be owned by uid {uid} with mode 0700"
        )


class Daemon:
    """One run of the daemon on the running event loop: ``await Daemon(...).run()`` -> exit
    code. ``environ`` is what the config was loaded with (a reload loads with it again)."""

    def __init__(
        self,
        config: Config,
        *,
        log: DaemonLog,
        notifier: Notifier,
        environ: Mapping[str, str],
    ) -> None:
        self.config = config
        self.log = log
        self.notifier = notifier
        self.environ = environ
        self.stop_requested = asyncio.Event()
        self.hurry = asyncio.Event()  # a second stop signal: cut the waits short
        self.stop_signal = ""
        self.journal: Journal | None = None
        self.engine: Engine | None = None
        self.executor: Executor | None = None
        self.feeds: dict[str, VenueFeed] = {}
        self.wiring: Wiring | None = None
        self.trading = False
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._watch: asyncio.Task[None] | None = None
        self.metrics: MetricsExporter | None = None
        self.live: dict[str, LiveGateway] = {}
        self.reconciler: Reconciler | None = None

    # -- entry ----------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        try:
            async with AsyncExitStack() as stack:
                return await self._run(stack)
        except StartupError as exc:
            self.log.error("startup failed", error=str(exc))
            return 1
        except Exception as exc:  # a bug or an unforeseen OS error: one line, not a traceback
            self.log.error("failed", error=f"{type(exc).__name__}: {_one_line(exc)}", exc_info=exc)
            return 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.notifier.close()
            self.log.end()

    def request_stop(self, why: str = "request") -> None:
        if self.stop_requested.is_set():
            if not self.hurry.is_set():
                self.log.warning("second stop signal: cutting the drain short", signal=why)
            self.hurry.set()
            return
        self.stop_signal = why
        self.stop_requested.set()

    def _sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(Action("SIGHUP")))
        self._tasks.append(task)
        task.add_done_callback(self._sighup_done)

    def _sighup_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.remove(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None and not isinstance(exc, ControlError):  # ControlError: logged
            self._fault("reload on SIGHUP failed", exc)

    # -- startup --------------------------------------------------------------------------

    async def _run(self, stack: AsyncExitStack) -> int:
        config = self.config
        n = self.notifier
        self.log.info(
            "starting",
            config=config.source,
            pid=os.getpid(),
            venues=list(config.venues),
            pairs=[p.id for p in config.enabled_pairs],
        )
        n.status("opening the journal")
        try:
            # Timed: the exporter's journal write and fsync latency.
            assert config.journal.directory is not None  # filled in at load
            journal = TimedJournal(config.journal.directory, **build.journal_options(config))
        except (JournalError, OSError) as exc:
            raise StartupError(f"journal {config.journal.directory}: {exc}") from None
        self.journal = journal
        stack.callback(self._close_journal)
        insts = build.instruments(config)
        try:
            rec = recover(
                journal.directory, insts.values(), portfolio=lambda: build.portfolio(config)
            )
        except RecoveryError as exc:
            raise StartupError(f"recovery from {journal.directory}: {exc}") from None
        resumed = rec.checkpoint_seq > 0 or rec.replayed > 0
        pf = rec.portfolio

        sims = build.simulators(config)
        if sims:
            n.status("starting the simulated venues")
            for sim in sims.values():
                await stack.enter_async_context(sim)
        feeds = {name: build.feed(config, name, insts, sims=sims) for name in config.venues}
        self.feeds = feeds
        syncs = {s.instrument.name: s for f in feeds.values() for s in f.syncs}
        clocks = {name: getattr(f, "router").clock for name, f in feeds.items()}  # noqa: B009
        wiring = self.wiring = Wiring(insts, syncs, clocks)

        def live_book(name: str) -> Book | None:
            sync = syncs[name]
            return sync.book if sync.live else None

        def books_of(venue: str) -> Callable[[str], Book | None]:
            return lambda symbol: live_book(f"{venue}:{symbol}")

        gateways: dict[str, Gateway] = {
            name: build.paper_gateway(config, name, books_of(name), pf)
            for name, v in config.venues.items()
            if v.mode is Mode.PAPER
        }
        live = await self._live_gateways(stack, insts.values())
        gateways.update(live)
        gates = build_gates(config, wiring, pf)
        executor = self.executor = Executor(
            gateways,
            pf,
            journal,
            fee_bps=build.venue_fees(config),
            books=lambda inst: live_book(inst.name),
            risk=gates,
        )
        # In front of the executor as the gateways' listener: acks, fills, outcomes per venue.
        tap = OrderTap(executor).attach(gateways.values())
        engine = self.engine = build_engine(
            config, wiring, executor, gates, build_pairs(config, wiring)
        )
        stack.push_async_callback(self._stop_trading, gateways)
        if resumed:
            engine.adopt(rec)
            self.log.info(
                "recovered",
                from_checkpoint=rec.checkpoint_seq,
                replayed=rec.replayed,
                open_arbs=len(rec.arbs),
                kill_level=rec.kill_level.name,
            )
        else:
            engine.checkpoint()

        handler = EngineControl(engine, feeds.values(), reload=self.reload)
        assert config.control.socket is not None  # filled in at load
        socket_path = Path(config.control.socket)
        ensure_socket_dir(socket_path)
        server = ControlServer(socket_path, handler)
        try:
            await server.start()
        except ControlSocketError as exc:
            raise StartupError(str(exc)) from None
        stack.push_async_callback(self._stop_server, server)
        lag = LoopLag()
        lag.start()
        stack.callback(lag.stop)
        self.metrics = self._start_metrics(tap, lag)
        if self.metrics is not None:
            stack.callback(self.metrics.stop)

        tasks = [asyncio.create_task(f.run(), name=f"feed-{name}") for name, f in feeds.items()]
        for task in tasks:
            task.add_done_callback(self._task_ended)
        stack.push_async_callback(self._stop_feeds, tasks)

        if not await self._wait_live():
            if self.stop_requested.is_set():
                self.log.info("stopped before trading", signal=self.stop_signal)
                return 0
            return 1
        if live and not await self._reconcile(pf, live, insts.values()):
            self.log.info("stopped before trading", signal=self.stop_signal)
            return 0
        for f in feeds.values():
            f.on_book = engine.on_book
            f.on_resync = engine.on_resync
        paper = sorted(set(gateways) - set(live))
        if paper:
            self.log.info(
                "reconciled",
                venues=paper,
                source="journal" if resumed else "config paper balances",
                note="paper venues: the portfolio is the venue account",
            )

        watchdog = Watchdog(n, lag, checks=[self._journal_health], on_change=self._watchdog_changed)
        watchdog.start()
        stack.callback(watchdog.stop)
        self._restart_watch()
        status_task = asyncio.create_task(self._status_loop(), name="status-line")
        status_task.add_done_callback(self._task_ended)
        reconcile_task: asyncio.Task[None] | None = None
        if self.reconciler is not None:
            reconcile_task = asyncio.create_task(self.reconciler.run(), name="reconcile")
            reconcile_task.add_done_callback(self._task_ended)
        busy = BusyPoll()
        if config.engine.busy_poll:
            busy.start()

        # What startup built (books, config, simulators) lives as long as the process: out
        # of the collector's generations, so its passes stay short on the hot path.
        gc.collect()
        gc.freeze()
        self.trading = True
        n.ready(status=self._status_text())
        self.log.info("ready", control_socket=str(socket_path), busy_poll=busy.running)
        await self.stop_requested.wait()

        # -- stop ---------------------------------------------------------------------------
        self.trading = False
        open_arbs = executor.open_arbs()
        n.stopping(status=f"stopping: draining {open_arbs} open arbs")
        self.log.info("stopping", signal=self.stop_signal, open_arbs=open_arbs)
        level_before = engine.gates.level if engine.gates is not None else KillLevel.NONE
        engine.kill(KillLevel.HALT_NEW, BY, f"stopping ({self.stop_signal})")
        drained = await self._drain()
        status_task.cancel()
        if reconcile_task is not None:
            reconcile_task.cancel()
        await busy.stop()
        if self._watch is not None:
            self._watch.cancel()
        now_gates = engine.gates  # a reload may have replaced them
        assert now_gates is not None
        last = now_gates.history[-1] if now_gates.history else None
        if level_before == KillLevel.NONE and last is not None and last.by == BY:
            # Our own halt was only for the stop: the next start must trade again.
            engine.resume(BY, "stopped: the halt was for the stop only")
        engine.checkpoint()
        self.log.info("drained" if drained else "drain cut short", open_arbs=executor.open_arbs())
        return 0

    async def _wait_live(self) -> bool:
        """Until every enabled pair's books are LIVE; False on a stop or past the deadline."""
        engine = self.engine
        assert engine is not None
        deadline = time.monotonic() + float(self.config.engine.live_timeout_s)
        waiting: list[str] = []
        while not self.stop_requested.is_set():
            pending = [
                s.instrument.name
                for p in engine.pairs
                for s in (p.sync_a, p.sync_b, p.sync_conv)
                if s is not None and not s.live
            ]
            if not pending:
                self.log.info("books live", books=len(self._pair_books()))
                return True
            if pending != waiting:
                waiting = pending
                self.notifier.status(f"waiting for LIVE books: {', '.join(pending)}")
            if time.monotonic() > deadline:
                self.log.error(
                    "books not live in time",
                    timeout_s=str(self.config.engine.live_timeout_s),
                    waiting=pending,
                )
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), 0.05)
        return False

    def _pair_books(self) -> set[str]:
        engine = self.engine
        assert engine is not None
        return {
            s.instrument.name
            for p in engine.pairs
            for s in (p.sync_a, p.sync_b, p.sync_conv)
            if s is not None
        }

    async def _drain(self) -> bool:
        executor = self.executor
        assert executor is not None
        drain = asyncio.create_task(executor.drain(float(self.config.engine.drain_s)))
        hurry = asyncio.create_task(self.hurry.wait())
        await asyncio.wait((drain, hurry), return_when=asyncio.FIRST_COMPLETED)
        hurry.cancel()
        if not drain.done():
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
            return False
        if drain.exception() is not None:  # TimeoutError: legs still out past the deadline
            self.log.warning("drain timed out", open_arbs=executor.open_arbs())
            return False
        return True

    # -- live venues ------------------------------------------------------------------------

    async def _live_gateways(
        self, stack: AsyncExitStack, insts: Iterable[Instrument]
    ) -> dict[str, LiveGateway]:
        """Build and start the order gateway of every live venue (StartupError, one line,
        on a missing credential, a missing gateway or an unreachable venue)."""
        config = self.config
        names = [name for name, v in config.venues.items() if v.mode is Mode.LIVE]
        if not names:
            return {}
        self.notifier.status(f"connecting to the live venues: {', '.join(names)}")
        built: dict[str, LiveGateway] = {}
        for name in names:
            try:
                built[name] = build_live_gateway(
                    config, name, insts, self._rate_limited, environ=self.environ
                )
            except GatewayBuildError as exc:
                raise StartupError(str(exc)) from None
        for name, gw in built.items():
            stack.push_async_callback(self._close_live, gw)
            try:
                await start_gateway(gw)
            except ReconcileError as exc:
                raise StartupError(str(exc)) from None
            self.log.info(
                "venue connected",
                venue=name,
                rest=gw.rest_url,
                order_ws=gw.ws_url or "",
                clock_offset_ms=gw.offset_ms,
            )
        self.live = built
        return built

    def _rate_limited(self, venue: str, seconds: float, banned: bool) -> None:
        """A gateway met 429/418: the rate gates stop new arbs there for as long."""
        engine, journal = self.engine, self.journal
        wait_ms = max(1, int(seconds * 1000))
        if engine is not None and engine.gates is not None:
            engine.gates.back_off(venue, wait_ms / 1000, banned)
        if journal is not None:
            journal.write("rate_limited", venue=venue, wait_ms=wait_ms, banned=banned)
        self.log.warning("rate limited by venue", venue=venue, wait_ms=wait_ms, banned=banned)

    async def _reconcile(
        self, pf: Portfolio, live: Mapping[str, LiveGateway], insts: Iterable[Instrument]
    ) -> bool:
        """Startup reconciliation of the live venues; False if a stop came first."""
        engine, executor, journal = self.engine, self.executor, self.journal
        assert engine is not None and executor is not None and journal is not None
        self.notifier.status(f"reconciling with {', '.join(sorted(live))}")
        if executor.open_arbs():
            # Arbs the journal left open are being resolved with their venues: their fills
            # must be in before the balances are compared.
            with contextlib.suppress(TimeoutError):
                await executor.drain(float(self.config.engine.drain_s))
        reconciler = Reconciler(
            self.config.reconcile,
            live,
            pf,
            journal,
            lambda: engine.gates,
            instruments=insts,
            futures=[n for n in live if self.config.venues[n].kind is VenueKind.BINANCE_USDM],
            log=self.log.warning,
        )
        task = asyncio.create_task(reconciler.startup(known=set(executor.orders)))
        stop = asyncio.create_task(self.stop_requested.wait())
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return False
        try:
            checks = task.result()
        except ReconcileError as exc:
            raise StartupError(str(exc)) from None
        engine.checkpoint()  # the next recovery starts from the venues' balances
        for name, check in checks.items():
            self.log.info(
                "reconciled",
                venues=[name],
                source="venue",
                differed=sorted(check.diffs),
                leftovers=self.config.reconcile.leftovers.value,
            )
        self.reconciler = reconciler
        return True

    # -- stop steps (pushed on the exit stack: they run on error paths too) ---------------

    async def _stop_feeds(self, tasks: list[asyncio.Task[None]]) -> None:
        for f in self.feeds.values():
            f.on_book = None
            f.on_resync = None
        for f in self.feeds.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(f.stop(), self._grace(5.0))
        for task in tasks:
            task.remove_done_callback(self._task_ended)
        _done, late = await asyncio.wait(tasks, timeout=self._grace(5.0)) if tasks else ((), ())
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_trading(self, gateways: Mapping[str, Gateway]) -> None:
        if self.executor is not None:
            await self.executor.close()
        for gw in gateways.values():
            if isinstance(gw, PaperGateway):
                gw.close()
        # Live gateways close on their own exit-stack callback (registered when started).

    async def _close_live(self, gw: LiveGateway) -> None:
        try:
            await asyncio.wait_for(gw.close(), self._grace(5.0))
        except Exception as exc:  # a stuck socket must not keep the journal from closing
            self.log.warning("gateway close failed", venue=gw.venue, error=_one_line(exc))

    async def _stop_server(self, server: ControlServer) -> None:
        await server.stop(timeout=self._grace(5.0))

    def _grace(self, seconds: float) -> float:
        return min(seconds, STOP_GRACE_S) if self.hurry.is_set() else seconds

    def _close_journal(self) -> None:
        journal = self.journal
        if journal is None:
            return
        try:
            journal.flush(timeout=10.0)
        except Exception as exc:  # still close: what is on disk stays a valid chain
            self.log.error("journal flush failed", error=_one_line(exc))
        try:
            journal.close()
        except Exception as exc:
            self.log.error("journal close failed", error=_one_line(exc))
            return
        self.log.info("stopped", journal_seq=journal.durable_seq)

    # -- running --------------------------------------------------------------------------

    def _restart_watch(self) -> None:
        """The engine's timer: automatic kill triggers and journaled counters."""
        engine = self.engine
        assert engine is not None
        if self._watch is not None:
            self._watch.cancel()
        self._watch = asyncio.create_task(
            engine.watch(interval_s=float(self.config.engine.risk_refresh_s)), name="risk-watch"
        )
        self._watch.add_done_callback(self._task_ended)

    async def _status_loop(self) -> None:
        """The terminal's status line, and the service manager's STATUS= (what
        ``systemctl status`` shows), at the configured rate."""
        while True:
            if self.log.tty or self.notifier.enabled:
                line = summary(self._status())
                self.log.status_line(line)
                if not self._reload_lock.locked():  # RELOADING shows its own status
                    self.notifier.status(line)
            await asyncio.sleep(float(self.config.status.interval_s))

    def _status(self) -> Any:
        engine = self.engine
        assert engine is not None
        books = [s for f in self.feeds.values() for s in f.syncs]
        return collect(engine, books, wall_ns=time.time_ns())

    def _status_text(self) -> str:
        st = self._status()
        live, total = live_books(st)
        return f"trading: {live}/{total} books live, {len(st['pairs'])} pairs"

    def _journal_health(self) -> str | None:
        journal = self.journal
        if journal is None:
            return None
        if journal.error is not None:
            return f"journal writer failed: {_one_line(journal.error)}"
        thread = getattr(journal, "_thread", None)
        if thread is not None and not thread.is_alive():
            return "journal writer thread dead"
        return None

    def _watchdog_changed(self, reason: str | None) -> None:
        if reason is None:
            self.log.info("watchdog pings resumed")
        else:
            self.log.error("watchdog pings withheld", reason=reason)

    def _task_ended(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            if not self.stop_requested.is_set():
                self._fault(f"task {task.get_name()} ended", None)
            return
        self._fault(f"task {task.get_name()} failed", exc)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self._fault(str(context.get("message") or "unhandled exception"), exc)

    def _fault(self, what: str, exc: BaseException | None) -> None:
        """Something escaped: say so once, and stop new arbs until an operator looks."""
        fields: dict[str, Any] = {"what": what}
        if exc is not None:
            fields["error"] = f"{type(exc).__name__}: {_one_line(exc)}"
            fields["exc_info"] = exc
        self.log.error("unexpected error", **fields)
        engine = self.engine
        if engine is not None and engine.gates is not None and self.trading:
            with contextlib.suppress(Exception):
                engine.kill(KillLevel.HALT_NEW, BY, f"unexpected error: {what}")

    # -- metrics ---------------------------------------------------------------------------

    def _start_metrics(self, tap: OrderTap, lag: LoopLag) -> MetricsExporter | None:
        """The Prometheus exporter (served from its own threads), when configured. A taken
        port stops a configured daemon (Restart= and the daemon-down alert say so); the
        embedded demo runs on without metrics rather than refuse to start."""
        spec = self.config.metrics
        engine = self.engine
        if not spec.enabled or engine is None:
            return None
        exporter = MetricsExporter(
            MetricSources(
                engine,
                feeds=list(self.feeds.values()),
                orders=tap,
                journal=self.journal,
                loop_lag=lag.current,
                build={"mode": "live" if self.live else "paper"},
                gateways=self.live,
            ),
            host=spec.host,
            port=spec.port,
        )
        try:
            exporter.start()
        except MetricsError as exc:
            if self.config.source == DEMO_NAME:
                self.log.warning("metrics off", error=str(exc))
                return None
            raise StartupError(str(exc)) from None
        self.log.info("metrics", url=exporter.url)
        return exporter

    # -- reload ----------------------------------------------------------------------------

    async def reload(self, action: Action) -> ReloadResult:
        """Re-read the config file and apply what may change live (SIGHUP, ctl reload)."""
        if not self.trading:
            # Before READY (or while stopping) there is no running config to change.
            self.log.warning("reload refused", by=action.who, errors=["not trading yet"])
            raise ControlError("reload: the daemon is not trading (starting or stopping)")
        async with self._reload_lock:
            self.notifier.reloading(status=f"reloading {self.config.source}")
            try:
                result = await self._reload(action)
            finally:
                self.notifier.ready(status=self._status_text() if self.trading else None)
            return result

    async def _reload(self, action: Action) -> ReloadResult:
        old = self.config
        journal = self.journal
        assert journal is not None
        try:
            if old.source == DEMO_NAME:
                new = load_demo(environ=self.environ)
            else:
                new = load(old.source, environ=self.environ)
            change = diff(old, new)
        except ConfigError as exc:
            # Nothing changes: the running config stays, every problem reported.
            journal.write(
                "config_reload",
                ok=False,
                applied={},
                refused=[],
                errors=list(exc.lines),
                by=action.who,
                reason=action.reason,
            )
            self.log.error("reload refused", by=action.who, errors=list(exc.lines))
            return ReloadResult(changed=[], refused=list(exc.lines))
        refused = [c.message for c in change.refused]
        if change.applied:
            if not await self._quiesce():
                msg = f"arbs kept in flight for {QUIESCE_S:g} s: nothing applied, try again"
                self.log.warning("reload deferred", by=action.who, reason=msg)
                return ReloadResult(changed=[], refused=[msg, *refused])
            engine, wiring = self.engine, self.wiring
            assert engine is not None and wiring is not None
            try:
                rewire(engine, change.config, wiring)
            except (ValueError, KeyError, TypeError) as exc:
                msg = f"cannot apply: {_one_line(exc)}"
                self.log.error("reload failed", by=action.who, error=msg)
                return ReloadResult(changed=[], refused=[msg, *refused])
            self.config = change.config
            self._restart_watch()
            if self.reconciler is not None:
                self.reconciler.reapply()  # the rebuilt gates know no holds yet
        journal.write(
            "config_reload", ok=True, by=action.who, reason=action.reason, **change.journal_fields()
        )
        changed = [c.message for c in change.applied]
        self.log.info("reloaded", by=action.who, changed=changed, refused=refused)
        return ReloadResult(changed=changed, refused=refused)

    async def _quiesce(self) -> bool:
        """Wait for a moment with no arb open (the swap then happens in the same step)."""
        executor = self.executor
        assert executor is not None
        deadline = time.monotonic() + QUIESCE_S
        while executor.open_arbs():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.001)
        return True


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())


def main(config_path: str | None, *, log: DaemonLog | None = None) -> int:
    """``arbengine run [-c FILE]``: exit 0 after a clean stop, 1 if it cannot start."""
    import uvloop

    log = DaemonLog() if log is None else log
    environ = dict(os.environ)
    try:
        config = load(config_path, environ=environ) if config_path else load_demo(environ=environ)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=log.out)
        return 1
    # Unset so that nothing this process starts believes it is the service.
    notifier = Notifier.from_env(unset=True)
    daemon = Daemon(config, log=log, notifier=notifier, environ=environ)
    return uvloop.run(daemon.run())
