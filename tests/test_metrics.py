"""The exporter over real HTTP on loopback, reading a real engine (tests/engine_rig.py).

Each figure scraped is compared with the object it comes from (engine, pairs, gates,
executor, portfolio, books, journal, taps); the exposition passes ``promtool check metrics``;
names and labels keep Prometheus conventions; a stalled loop, a broken source and a busy
port are survived or reported in one line; and scrapes from other threads while the loop
(and a deliberately hostile thread) mutate the dicts read never fail.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from arbengine import __version__
from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.execution import ExecutionPolicy
from arbengine.gateways.base import VenueCredentials
from arbengine.gateways.okx import OkxGateway
from arbengine.metrics import MetricsError, MetricsExporter, MetricSources
from arbengine.metrics_taps import OrderTap, TimedJournal
from arbengine.orders import Fill, Order, OrderStatus, Side, TimeInForce, from_atoms
from arbengine.risk import KillLevel, Reason
from arbengine.venues.sim import OkxSim
from arbengine.venues.sim.faults import Fault
from tests.engine_rig import Make, Rig
from tests.prometheus_server import require_binary
from tests.waiting import until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

#: Every label the exporter may use: bounded sets, never ids or prices.
LABELS = {
    "venue",
    "symbol",
    "asset",
    "pair",
    "direction",
    "gate",
    "stage",
    "status",
    "state",
    "currency",
    "kind",
    "side",
    "section",
    "version",
    "python",
    "le",
    "code",
}


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(got: Samples, name: str, **labels: str) -> float:
    return got[name, frozenset(labels.items())]


def units(atoms: int) -> float:
    return float(from_atoms(atoms))


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        body: bytes = resp.read()
        return body.decode()


def sources(rig: Rig, **kw: object) -> MetricSources:
    tap = OrderTap(rig.executor).attach(rig.gateways.values())
    return MetricSources(
        rig.engine,
        books=[v.sync for v in rig.venues.values()],
        orders=tap,
        clock=rig.clock,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def exporters() -> Iterator[list[MetricsExporter]]:
    started: list[MetricsExporter] = []
    yield started
    for exporter in started:
        exporter.stop()


def start(exporters: list[MetricsExporter], src: MetricSources, **kw: object) -> MetricsExporter:
    exporter = MetricsExporter(src, port=0, **kw)  # type: ignore[arg-type]
    exporter.start()
    exporters.append(exporter)
    return exporter


async def test_a_scrape_reports_the_engine_as_its_objects_hold_it(
    make: Make, exporters: list[MetricsExporter]
) -> None:
    rig = make(gateway={"okx": {"reject_prob": 1.0}})  # a rejected leg, an unwind
    src = sources(rig, loop_lag=lambda: 0.0025, build={"mode": "paper"})
    exporter = start(exporters, src)
    assert exporter.url == f"http://127.0.0.1:{exporter.port}/metrics" and exporter.port > 0
    rig.rich()
    await rig.settle()
    rig.gates.kill(KillLevel.HALT_NEW, "alice", "checking")
    rig.rich("binance", bid="30300")  # the other way round: refused at the kill switch
    rig.gap("okx")  # OKX's book leaves LIVE: a gap, a resync
    rig.journal.flush()

    got = samples(await asyncio.to_thread(fetch, exporter.url))

    assert (
        value(
            got,
            "arbengine_build_info",
            version=__version__,
            python=sys.version.split()[0],
            mode="paper",
        )
        == 1
    )
    (pair,) = rig.engine.pairs
    assert value(got, "arbengine_pair_evaluations_total", pair="btc") == pair.evaluations > 0
    assert pair.opportunities == 2
    # One each way: the arb (buy Binance, sell OKX) and the refusal (the other way round).
    for direction in ("buy_a_sell_b", "buy_b_sell_a"):
        assert value(got, "arbengine_opportunities_total", pair="btc", direction=direction) == 1
    (arb,) = rig.arbs()
    assert value(got, "arbengine_arbs_total", pair="btc", direction="buy_a_sell_b") == 1
    assert value(got, "arbengine_arbs_total", pair="btc", direction="buy_b_sell_a") == 0
    sent = max(leg.sent_ns for leg in arb.legs)
    assert value(got, "arbengine_tick_to_order_seconds_count") == 1
    assert value(got, "arbengine_tick_to_order_seconds_sum") == pytest.approx(
        (sent - arb.opp.recv_ns) / 1e9
    )
    assert value(got, "arbengine_stage_latency_seconds_count", stage="risk") == 1
    edge = value(got, "arbengine_arb_edge_bps_sum", pair="btc", direction="buy_a_sell_b")
    assert edge == pytest.approx(float(arb.opp.edge_bps), abs=0.01)
    top = pair.results[0][1].top_edge_bps
    assert value(got, "arbengine_pair_top_edge_bps", pair="btc", direction="buy_a_sell_b") == top

    counts = rig.gates.counts
    assert value(got, "arbengine_risk_passes_total") == counts[Reason.OK] >= 1
    assert value(got, "arbengine_risk_rejections_total", gate="kill_switch") == 1
    assert value(got, "arbengine_risk_rejections_total", gate="max_exposure") == 0
    assert value(got, "arbengine_kill_level") == 1
    assert value(got, "arbengine_kill_switch_changes_total") == 1
    assert value(got, "arbengine_venue_breaker_state", venue="okx", state="closed") == 1
    assert value(got, "arbengine_venue_breaker_state", venue="okx", state="open") == 0
    assert value(got, "arbengine_venue_recent_events", venue="okx", kind="rejects") == 1
    assert value(got, "arbengine_venue_recent_events", venue="okx", kind="resyncs") == 1
    assert value(got, "arbengine_net_exposure_limit", asset="BTC") == 1

    ex = rig.executor.counters
    assert value(got, "arbengine_arbs_opened_total") == ex["arbs"] == 1
    assert value(got, "arbengine_arbs_settled_total") == ex["arbs_done"] == 1
    assert value(got, "arbengine_hedges_total") == ex["hedges"] >= 1
    assert value(got, "arbengine_leg_failures_total") == ex["leg_failures"] == 1
    assert value(got, "arbengine_orders_total", venue="okx", status="rejected") == 1
    assert value(got, "arbengine_orders_total", venue="binance", status="filled") == 1 + len(
        arb.hedges
    )
    assert value(got, "arbengine_order_acks_total", venue="okx") == 0
    assert value(got, "arbengine_fills_total", venue="binance") >= 2
    assert value(got, "arbengine_order_ack_latency_seconds_count", venue="binance") >= 2
    assert value(got, "arbengine_orders_open", venue="okx") == 0

    okx = {"venue": "okx", "symbol": "BTC-USDT"}
    binance = {"venue": "binance", "symbol": "BTCUSDT"}
    assert value(got, "arbengine_book_live", **okx) == 0
    assert value(got, "arbengine_book_live", **binance) == 1
    assert value(got, "arbengine_book_state", state="resyncing", **okx) == 1
    assert value(got, "arbengine_book_state", state="live", **okx) == 0
    sync = rig.venues["okx"].sync
    assert value(got, "arbengine_book_resyncs_total", **okx) == sync.resyncs == 1
    assert value(got, "arbengine_book_gaps_total", **okx) == sync.gaps == 1
    assert value(got, "arbengine_book_messages_total", **okx) == sync.messages
    assert (
        value(got, "arbengine_book_age_seconds", **binance)
        == (rig.clock() - rig.venues["binance"].sync.book.recv_ts_ns) / 1e9
    )

    journal = rig.journal
    assert value(got, "arbengine_journal_last_seq") == journal.last_seq
    assert value(got, "arbengine_journal_durable_seq") == journal.durable_seq
    assert value(got, "arbengine_journal_backlog_entries") == 0
    assert value(got, "arbengine_journal_failed") == 0
    assert value(got, "arbengine_event_loop_lag_seconds") == 0.0025

    pf = rig.portfolio
    for (venue, asset), atoms in pf.balances().items():
        assert value(got, "arbengine_balance", venue=venue, asset=asset) == units(atoms)
        assert value(got, "arbengine_available_balance", venue=venue, asset=asset) == units(
            pf.available(venue, asset)
        )
    assert value(got, "arbengine_inventory", asset="USDT") == units(pf.inventory("USDT")) != 0
    assert value(got, "arbengine_net_exposure", asset="BTC") == units(pf.net_exposure("BTC"))
    marks = rig.engine.marks()  # Binance's mid: OKX's book is down
    assert marks == {"BTC": Decimal("30305")}
    assert value(got, "arbengine_mark_price", asset="BTC", currency="USDT") == 30305
    assert value(got, "arbengine_equity", currency="USDT") == units(pf.equity(marks))
    assert value(got, "arbengine_realized_pnl", currency="USDT") == units(pf.realized_pnl(marks))
    assert value(got, "arbengine_realized_pnl", currency="USDT") < 0  # the unwind lost
    assert value(got, "arbengine_drawdown", currency="USDT") == units(pf.drawdown(marks))
    assert value(got, "arbengine_valuation_ok") == 1
    assert value(got, "arbengine_metrics_loop_timeouts_total") == 0
    assert {v for k, v in got.items() if k[0] == "arbengine_metrics_errors_total"} == {0}
    assert any(k[0] == "process_resident_memory_bytes" for k in got)


async def test_unknown_outcomes_are_counted_per_venue(
    make: Make, exporters: list[MetricsExporter]
) -> None:
    # Binance answers after 0.3 s; the executor gives up waiting after 0.1 s: its leg goes
    # UNKNOWN (then resolved by the late answer); OKX's never does.
    rig = make(policy=ExecutionPolicy(order_timeout_s=0.1, query_interval_s=5.0))
    rig.gateways["binance"].latency_s = 0.3
    exporter = start(exporters, sources(rig))
    got = samples(await asyncio.to_thread(fetch, exporter.url))
    for venue in ("binance", "okx"):  # every traded venue, from the start
        assert value(got, "arbengine_orders_unknown_total", venue=venue) == 0
    rig.rich()
    await until(lambda: rig.executor.counters.get("unknown", 0) == 1)
    await rig.settle()
    got = samples(await asyncio.to_thread(fetch, exporter.url))
    assert value(got, "arbengine_orders_unknown_total", venue="binance") == 1
    assert value(got, "arbengine_orders_unknown_total", venue="okx") == 0
    assert rig.executor.counters["unknown:binance"] == 1


async def test_live_gateway_counters_are_exported_per_venue(
    make: Make, exporters: list[MetricsExporter]
) -> None:
    """A real OKX gateway against its simulator meets a 429: the scrape shows the order,
    the refusal by code, the rate-limit wait still running and the clock offset."""
    rig = make()
    async with OkxSim(["BTC-USDT"], seed=5, interval_s=0.05) as sim:
        sim.exchange.add_account("mk", "ms", "mp", {"USDT": "1000", "BTC": "1"})
        ref = CredentialRef("env", "T")
        gw = OkxGateway(
            "okx",
            [Instrument("okx", "BTC-USDT", "BTC", "USDT", "0.1", "0.00000001")],
            VenueCredentials(Secret("mk", ref), Secret("ms", ref), Secret("mp", ref)),
            rest_url=sim.rest_url,
        )
        done: list[OrderStatus] = []

        class Listener:
            def on_ack(self, order: Order, ts_ns: int) -> None: ...
            def on_fill(self, order: Order, fill: Fill) -> None: ...
            def on_done(self, order: Order, status: OrderStatus, reason: str, ts: int) -> None:
                done.append(status)

        gw.set_listener(Listener())
        async with gw:
            sim.faults.inject(Fault.ORDER_429, seconds=30)
            inst = gw.instruments["BTC-USDT"]
            gw.submit(Order("m1", "a1", inst, Side.BUY, 10, 100_000, TimeInForce.IOC))
            await until(lambda: done == [OrderStatus.REJECTED], 4.0)
            exporter = start(exporters, sources(rig, gateways={"okx": gw}))
            text = await asyncio.to_thread(fetch, exporter.url)
    got = samples(text)
    lint = subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "gateway" not in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    assert value(got, "arbengine_gateway_orders_submitted_total", venue="okx") == 1
    assert value(got, "arbengine_gateway_rate_limited_total", venue="okx") == 1
    assert value(got, "arbengine_gateway_rejects_total", venue="okx") == 1
    assert value(got, "arbengine_gateway_reject_codes_total", venue="okx", code="429") == 1
    assert 25 < value(got, "arbengine_gateway_blocked_seconds", venue="okx") <= 30
    offset = value(got, "arbengine_gateway_clock_offset_seconds", venue="okx")
    assert offset == gw.offset_ms / 1000 and abs(offset) < 1


async def test_the_exposition_keeps_prometheus_conventions(
    make: Make, exporters: list[MetricsExporter], tmp_path: Path
) -> None:
    promtool = require_binary("promtool")
    rig = make(pairs=("btc", "xq"))  # a cross-quote pair too: more venues, assets
    src = sources(rig, loop_lag=lambda: 0.001, journal=TimedJournal(tmp_path / "j"))
    exporter = start(exporters, src)
    rig.rich()
    await rig.settle()
    text = await asyncio.to_thread(fetch, exporter.url)
    assert src.journal is not None
    src.journal.close()

    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr

    families = list(text_string_to_metric_families(text))
    names = {f.name for f in families}
    assert {"arbengine_journal_write_seconds", "arbengine_journal_fsync_seconds"} <= names
    for family in families:
        assert family.name.startswith(("arbengine_", "process_")), family.name
        assert family.documentation, family.name
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_bps")), family.name
        if family.name.startswith("arbengine_"):
            for s in family.samples:
                assert set(s.labels) <= LABELS, (s.name, s.labels)
                # No arb or order ids: the rig's arb ids start "t-".
                assert not any(v.startswith("t-") for v in s.labels.values()), s
    # Bounded: the label sets come from configuration, not from traffic.
    gates = {s.labels["gate"] for f in families for s in f.samples if "gate" in s.labels}
    assert gates == {r.name.lower() for r in Reason if r is not Reason.OK}


async def test_a_stalled_loop_delays_a_scrape_by_the_timeout_only(
    make: Make, exporters: list[MetricsExporter]
) -> None:
    rig = make()
    exporter = start(exporters, sources(rig), loop_timeout_s=0.2)
    result: list[str] = []
    took: list[float] = []

    def scrape() -> None:
        t0 = time.monotonic()
        result.append(fetch(exporter.url))
        took.append(time.monotonic() - t0)

    thread = threading.Thread(target=scrape)
    thread.start()
    time.sleep(1.0)  # the event loop is stuck (a blocking call in a callback)
    thread.join(timeout=10)
    got = samples(result[0])
    assert took[0] < 0.9  # served without waiting for the loop
    assert value(got, "arbengine_metrics_loop_timeouts_total") == 1
    assert value(got, "arbengine_book_live", venue="okx", symbol="BTC-USDT") == 1
    assert not [k for k in got if k[0] == "arbengine_balance"]  # loop-owned: left out
    # Once the loop runs again, so does the next scrape, in full.
    got = samples(await asyncio.to_thread(fetch, exporter.url))
    assert value(got, "arbengine_balance", venue="okx", asset="BTC") == 2


async def test_a_broken_source_is_counted_and_the_rest_still_served(
    make: Make, exporters: list[MetricsExporter]
) -> None:
    def lag() -> float:
        raise RuntimeError("lag monitor not running")

    rig = make()
    exporter = start(exporters, sources(rig, loop_lag=lag))
    for n in (1, 2):
        got = samples(await asyncio.to_thread(fetch, exporter.url))
        assert value(got, "arbengine_metrics_errors_total", section="loop") == n
        assert not [k for k in got if k[0] == "arbengine_event_loop_lag_seconds"]
        assert value(got, "arbengine_kill_level") == 0
    assert exporter.collector.last_error == "loop: RuntimeError: lag monitor not running"


async def test_scrapes_in_process_and_without_a_loop_read_everything_directly(
    make: Make,
) -> None:
    rig = make()
    rig.rich()
    await rig.settle()
    exporter = MetricsExporter(sources(rig), port=0)  # never started: no HTTP, no loop hop
    got = samples(exporter.scrape().decode())
    assert value(got, "arbengine_arbs_total", pair="btc", direction="buy_a_sell_b") == 1
    assert value(got, "arbengine_balance", venue="okx", asset="BTC") == units(
        rig.portfolio.balance("okx", "BTC")
    )


@pytest.mark.parametrize(
    ("host", "port", "error"),
    [
        ("", 9108, "metrics: listen host must be a non-empty string, got ''"),
        ("127.0.0.1", 70000, "metrics: listen port must be an int in 0..65535, got 70000"),
        ("127.0.0.1", True, "metrics: listen port must be an int in 0..65535, got True"),
        ("127.0.0.1", "9108", "metrics: listen port must be an int in 0..65535, got '9108'"),
    ],
)
async def test_a_bad_listen_address_is_one_line(
    make: Make, host: str, port: int, error: str
) -> None:
    with pytest.raises(MetricsError) as info:
        MetricsExporter(sources(make()), host=host, port=port)
    assert str(info.value) == error


async def test_a_taken_port_is_one_line_and_stop_frees_the_port(make: Make) -> None:
    rig = make()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        exporter = MetricsExporter(sources(rig), port=port)
        with pytest.raises(MetricsError) as info:
            exporter.start()
        assert (
            str(info.value) == f"metrics: cannot listen on 127.0.0.1:{port}: Address already in use"
        )
    exporter.start()  # the port is free now
    assert (await asyncio.to_thread(fetch, exporter.url)).startswith("# HELP")
    exporter.stop()
    exporter.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


async def test_scrapes_survive_the_loop_and_another_thread_mutating_what_they_read(
    make: Make, exporters: list[MetricsExporter]
) -> None:
    """Copying a dict while another thread changes it is exactly where "dictionary changed
    size during iteration" comes from. Here the loop trades (and grows its dicts) while a
    hostile thread adds and removes keys in the dicts the exporter reads, with thread
    switches forced as often as CPython allows, and scrapes run from four threads. A naive
    reader under the same conditions fails, which shows the race is really there."""
    rig = make()
    src = sources(rig)
    assert src.orders is not None
    exporter = start(exporters, src)
    hostile = [rig.engine.counters, rig.executor.counters, rig.executor.exposure, src.orders.acks]
    stop = threading.Event()

    def mutate() -> None:
        i = 0
        while not stop.is_set():
            for d in hostile:
                d[f"zz{i % 50}"] = i
                d.pop(f"zz{(i + 25) % 50}", None)
            i += 1

    def naive_fails() -> bool:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                for d in hostile:
                    for k, v in d.items():
                        str(k) + str(v)
            except RuntimeError as exc:
                assert "during iteration" in str(exc)  # changed size, or keys changed
                return True
        return False

    errors: list[BaseException] = []
    scrapes = [0]

    def scraper() -> None:
        try:
            while not stop.is_set():
                samples(fetch(exporter.url))
                scrapes[0] += 1
        except BaseException as exc:
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    mutator = threading.Thread(target=mutate)
    readers = [threading.Thread(target=scraper) for _ in range(4)]
    try:
        mutator.start()
        assert await asyncio.to_thread(naive_fails)
        for t in readers:
            t.start()
        for _ in range(60):  # the loop keeps trading meanwhile
            rig.rich()
            await rig.settle()
            rig.tick(1_000_000)
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        for t in (mutator, *readers):
            if t.is_alive():
                t.join()
    assert not errors, errors[0]
    assert scrapes[0] >= 8
    assert not any(exporter.collector.errors.values()), exporter.collector.last_error
    got = samples(await asyncio.to_thread(fetch, exporter.url))
    assert value(got, "arbengine_arbs_opened_total") == rig.executor.counters["arbs"] >= 60
