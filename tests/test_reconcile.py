"""Reconciliation of a live venue against the engine's portfolio, over loopback: a real
``OkxSim`` with its order entry, a real ``OkxGateway`` (REST), a real ``Journal`` and real
risk gates. Startup cancels or adopts leftover orders and takes the venue's balances; the
periodic check holds a venue whose balances drift and releases it when they agree again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from arbengine import config_build as build
from arbengine import reconcile
from arbengine._core.instrument import Instrument
from arbengine.config import load_text
from arbengine.config_schema import CredentialRef, Leftovers, Money, ReconcileSpec
from arbengine.config_secrets import Secret
from arbengine.gateways.base import VenueCredentials
from arbengine.gateways.binance import BinanceUsdmGateway
from arbengine.gateways.okx import OkxGateway
from arbengine.journal import Journal, as_int, read_entries
from arbengine.orders import AtomScale, Fill, Order, OrderStatus, Purpose, Side, atoms
from arbengine.portfolio import Portfolio
from arbengine.reconcile import ReconcileError, Reconciler, start_gateway
from arbengine.risk import ArbIntent, Leg, Reason, RiskGates
from arbengine.venues.sim import BinanceSim, OkxSim
from arbengine.venues.sim.exchange import SimAccount
from arbengine.venues.sim.model import ASK, BID
from tests.waiting import until

KEY, SECRET, PHRASE = "okx-rec-key", "0KX-S3CRET-reconcile", "pass-phrase-2"
SYMBOL = "BTC-USDT"
INST = Instrument("okx", SYMBOL, "BTC", "USDT", "0.1", "0.00000001", min_size="0.00001")
START = {"USDT": "100000", "BTC": "2"}

CONFIG = """\
venues:
  binance:
    kind: binance
    fee_bps: "10"
    instruments:
      BTCUSDT: {base: BTC, quote: USDT, tick: "0.01", lot: "0.00001", min_notional: "5"}
    paper:
      balances: {BTC: "1", USDT: "100000"}
  okx:
    kind: okx
    fee_bps: "10"
    instruments:
      BTC-USDT: {base: BTC, quote: USDT, tick: "0.1", lot: "0.00000001", min_size: "0.00001"}
    paper:
      balances: {BTC: "1", USDT: "100000"}
pairs:
  - id: btc
    a: binance:BTCUSDT
    b: okx:BTC-USDT
    min_edge_bps: "1"
    max_edge_bps: "500"
    max_size: "0.05"
    max_notional: "10000"
risk:
  max_inventory: {BTC: "1"}
  max_net_exposure: {BTC: "1"}
  max_daily_loss: "1000"
  max_drawdown: "2000"
"""


def creds() -> VenueCredentials:
    def s(value: str, name: str) -> Secret:
        return Secret(value, CredentialRef("env", name))

    return VenueCredentials(s(KEY, "K"), s(SECRET, "S"), s(PHRASE, "P"))


@dataclass
class Rig:
    sim: OkxSim
    gw: OkxGateway
    account: SimAccount
    pf: Portfolio
    journal: Journal
    gates: RiskGates

    def reconciler(self, **spec: Any) -> Reconciler:
        return Reconciler(
            ReconcileSpec(**spec),
            {"okx": self.gw},
            self.pf,
            self.journal,
            lambda: self.gates,
            instruments=[INST],
        )

    def entries(self, event: str) -> list[dict[str, Any]]:
        self.journal.flush(timeout=5.0)
        return [e for e in read_entries(self.journal.directory) if e["event"] == event]

    def truth(self, asset: str) -> int:
        """The venue's total of ``asset`` (free + what resting orders lock)."""
        return self.account.free.get(asset, 0) + self.account.locked.get(asset, 0)

    def far_bid(self) -> int:
        """A price well below the book: a GTC buy there rests."""
        best = self.sim.sources[SYMBOL].book.levels(BID)[0][0]
        return best // 2


@asynccontextmanager
async def rig(tmp_path: Path, recovered: dict[str, str] | None = None) -> AsyncIterator[Rig]:
    """``recovered``: the portfolio's okx balances as a journal recovered them."""
    config = load_text(CONFIG, "c.yaml")
    insts = build.instruments(config)
    balances = {("binance", "BTC"): atoms("1"), ("binance", "USDT"): atoms("100000")}
    for asset, amount in (recovered or {}).items():
        balances[("okx", asset)] = atoms(amount)
    pf = Portfolio(balances)
    gates = RiskGates(build.risk_limits(config, insts), pf)
    journal = Journal(tmp_path / "journal")
    async with OkxSim([SYMBOL], seed=21, interval_s=0.05) as sim:
        sim.pause()
        account = sim.exchange.add_account(KEY, SECRET, PHRASE, START)
        gw = OkxGateway("okx", [INST], creds(), rest_url=sim.rest_url, timeout_s=1.0)
        await start_gateway(gw)
        try:
            yield Rig(sim, gw, account, pf, journal, gates)
        finally:
            await gw.close()
            journal.close()


def _rest_leftover(r: Rig, cid: str, lots: int = 100_000) -> int:
    """A previous run's resting GTC buy; returns its price in ticks."""
    price = r.far_bid()
    inst = r.sim.exchange.market(SYMBOL).instrument
    r.sim.exchange.rest(KEY, SYMBOL, "BUY", inst.price.format(price), inst.size.format(lots), cid)
    return price


async def test_startup_cancels_leftovers_and_takes_the_venues_balances(tmp_path: Path) -> None:
    async with rig(tmp_path, recovered={"USDT": "99000", "BTC": "2.5"}) as r:
        _rest_leftover(r, "old1")
        _rest_leftover(r, "old2")
        assert r.account.locked["USDT"] > 0
        checks = await r.reconciler(leftovers=Leftovers.CANCEL).startup()
        for cid in ("old1", "old2"):
            order = r.sim.exchange.get(KEY, client_id=cid)
            assert order is not None and order.status == "CANCELED"
        assert r.sim.exchange.open_orders(KEY) == []
        assert r.account.locked["USDT"] == 0
        for asset in ("USDT", "BTC"):
            assert r.pf.balance("okx", asset) == r.truth(asset) == atoms(START[asset])
        assert r.pf.inventory("BTC") == 0  # a deposit, not a trade: inventory unchanged
        assert checks["okx"].diffs == {
            "BTC": (atoms("2.5"), atoms("2")),
            "USDT": (atoms("99000"), atoms("100000")),
        }
        cancelled = r.entries(reconcile.LEFTOVER_CANCELLED)
        assert sorted(e["client_id"] for e in cancelled) == ["old1", "old2"]
        assert {e["status"] for e in cancelled} == {"CANCELED"}
        (rec,) = r.entries(reconcile.RECONCILED)
        assert rec["venue"] == "okx"
        assert sorted(rec["leftovers_cancelled"]) == ["old1", "old2"]
        assert rec["differed"]["BTC"] == {"journal": atoms("2.5"), "venue": atoms("2")}
        assert set(rec["differed"]) == {"BTC", "USDT"}


async def test_startup_adopts_leftovers_and_leaves_their_funds_out(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        price = _rest_leftover(r, "keep1", lots=200_000)
        locked = r.account.locked["USDT"]
        assert locked == price * 200_000 * 10**9  # 0.1 USDT x 10**-8 BTC = 10**9 atoms
        await r.reconciler(leftovers=Leftovers.ADOPT).startup()
        order = r.sim.exchange.get(KEY, client_id="keep1")
        assert order is not None and order.status == "NEW"  # still resting
        # The locked funds are the leftover's: the engine's USDT is the free part.
        assert r.pf.balance("okx", "USDT") == r.truth("USDT") - locked
        assert r.pf.balance("okx", "BTC") == atoms("2")
        (adopted,) = r.entries(reconcile.LEFTOVER_ADOPTED)
        assert (adopted["client_id"], adopted["price"], adopted["size"]) == (
            "keep1",
            price,
            200_000,
        )
        assert r.entries(reconcile.LEFTOVER_CANCELLED) == []


async def test_the_engines_own_orders_are_not_leftovers(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        _rest_leftover(r, "mine1")
        checks = await r.reconciler().startup(known={"mine1"})
        order = r.sim.exchange.get(KEY, client_id="mine1")
        assert order is not None and order.status == "NEW"
        assert r.entries(reconcile.LEFTOVER_CANCELLED) == []
        assert checks["okx"].skipped == ""


async def test_drift_holds_the_venue_until_the_balances_agree_again(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        rec = r.reconciler(drift_tolerance={"USDT": Decimal("0.5")})
        await rec.startup()
        assert (await rec.check("okx")).drifted == {}
        # Within tolerance: noted, not held.
        r.account.free["USDT"] -= atoms("0.4")
        check = await rec.check("okx")
        assert check.diffs and not check.drifted
        assert r.gates.healthy("okx")
        # Beyond it (a withdrawal, a fill we never heard of): held.
        r.account.free["BTC"] -= atoms("0.01")
        check = await rec.check("okx")
        assert check.drifted == {"BTC": (atoms("2"), atoms("1.99"))}
        assert r.gates.held == {"okx": rec.held["okx"]}
        assert not r.gates.healthy("okx")
        (drift,) = r.entries(reconcile.DRIFT)
        assert drift["drift"]["BTC"] == {
            "engine": atoms("2"),
            "venue": atoms("1.99"),
            "tolerance": 0,
        }
        assert drift["held"] is True
        # Still off on the next round: still held (journaled again, not new).
        await rec.check("okx")
        assert [e["new"] for e in r.entries(reconcile.DRIFT)] == [True, False]
        # The venue agrees again: released.
        r.account.free["BTC"] += atoms("0.01")
        check = await rec.check("okx")
        assert check.drifted == {}
        assert r.gates.held == {} and rec.held == {}
        assert r.gates.healthy("okx")
        (cleared,) = r.entries(reconcile.DRIFT_CLEARED)
        assert cleared["venue"] == "okx"
        assert "BTC" in cleared["was"]


def arb(r: Rig) -> ArbIntent:
    """Buy 0.001 BTC on Binance at 60000.00, sell it on OKX at 60030.0 (5 bps), books
    fresh: everything passes but what the venue's state decides."""
    now = time.monotonic_ns()
    pair = r.gates.limits.pairs[0]
    return ArbIntent(
        "btc",
        Leg(pair.a, 6_000_000, 100, True, now),
        Leg(pair.b, 600_300, 100_000, True, now),
        Decimal(5),
        now,
        0,  # no venue event time: the lag gate has nothing to judge
        None,
    )


async def test_a_hold_refuses_new_arbs_and_survives_a_reload(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        rec = r.reconciler()
        await rec.startup()
        assert r.gates.check_arb(arb(r)) is Reason.OK
        r.account.free["USDT"] += atoms("5")
        await rec.check("okx")
        assert r.gates.check_arb(arb(r)) is Reason.VENUE_UNHEALTHY
        assert r.gates.last_venue == "okx"
        assert r.gates.state.unhealthy == ("okx",)
        # A reload builds new gates: the hold is put back on them.
        fresh = RiskGates(r.gates.limits, r.pf)
        r.gates = fresh
        rec.reapply()
        assert fresh.held == {"okx": rec.held["okx"]}
        assert fresh.check_arb(arb(r)) is Reason.VENUE_UNHEALTHY


async def test_no_comparison_while_an_order_is_in_flight(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        rec = r.reconciler()
        await rec.startup()
        r.account.free["USDT"] += atoms("5")
        order = Order("x-1", "arb-x", INST, Side.BUY, 100, 100_000, purpose=Purpose.ENTRY)
        r.pf.reserve(order, Decimal(10))
        check = await rec.check("okx")
        assert check.skipped == "orders in flight"
        assert r.gates.held == {}
        r.pf.on_done(order, OrderStatus.CANCELED)
        assert (await rec.check("okx")).drifted


async def test_an_unreachable_venue_is_one_line_after_a_bounded_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "RETRY_S", (0.01, 0.01))
    async with OkxSim([SYMBOL], seed=3) as sim:
        url = sim.rest_url
    gw = OkxGateway("okx", [INST], creds(), rest_url=url, timeout_s=0.3)  # nothing listens
    try:
        with pytest.raises(ReconcileError) as err:
            await start_gateway(gw)
    finally:
        await gw.close()
    message = str(err.value)
    assert message.startswith("venue okx: connecting (server time) failed 3 times (last: ")
    assert "\n" not in message and SECRET not in message


async def test_a_venue_refusing_our_keys_is_one_line_at_once(tmp_path: Path) -> None:
    async with OkxSim([SYMBOL], seed=4) as sim:
        sim.exchange.add_account(KEY, SECRET, PHRASE, START)
        wrong = VenueCredentials(
            Secret(KEY, CredentialRef("env", "K")),
            Secret("not-the-secret", CredentialRef("env", "S")),
            Secret(PHRASE, CredentialRef("env", "P")),
        )
        gw = OkxGateway("okx", [INST], wrong, rest_url=sim.rest_url, timeout_s=1.0)
        journal = Journal(tmp_path / "journal")
        try:
            await start_gateway(gw)  # the server time is public: this works
            rec = Reconciler(
                ReconcileSpec(), {"okx": gw}, Portfolio(), journal, lambda: None, instruments=[INST]
            )
            with pytest.raises(ReconcileError) as err:
                await rec.startup()
        finally:
            await gw.close()
            journal.close()
    message = str(err.value)
    assert message.startswith("venue okx: open orders refused: 50113")
    assert "\n" not in message and "not-the-secret" not in message


USDM = Instrument(
    "binance_usdm",
    "BTCUSDT",
    "BTC",
    "USDT",
    tick="0.10",
    lot="0.001",
    min_size="0.001",
    min_notional="100",
    derivative=True,
)
BN_KEY, BN_SECRET = "bnUsdmKey0123", "BN-usdm-S3CRET"


def usdm_gateway(sim: BinanceSim) -> BinanceUsdmGateway:
    return BinanceUsdmGateway(
        "binance_usdm",
        [USDM],
        VenueCredentials(
            Secret(BN_KEY, CredentialRef("env", "K")),
            Secret(BN_SECRET, CredentialRef("env", "S")),
        ),
        rest_url=sim.rest_url,
        timeout_s=1.0,
    )


async def test_a_futures_venue_is_its_positions_and_its_wallet(tmp_path: Path) -> None:
    """USDⓈ-M: the base is the position (taken with the venue's entry value at startup),
    the quote the wallet balance, which the portfolio books as the venue does."""
    async with BinanceSim(market="usdm", seed=5, interval_s=0.05) as sim:
        sim.pause()
        account = sim.exchange.add_account(BN_KEY, BN_SECRET, balances={"USDT": "100000"})
        ask = sim.sources["BTCUSDT"].book.levels(ASK)[0][0]
        price = USDM.price.format(ask)
        # A position left by an earlier run: 0.002 BTC long.
        sim.exchange.place(BN_KEY, "BTCUSDT", "BUY", price, "0.002", "IOC", "earlier1")
        assert account.positions == {"BTCUSDT": 2}
        cost = AtomScale.of(USDM).notional(ask, 2)
        fee = sim.exchange.get(BN_KEY, client_id="earlier1").fee_total  # type: ignore[union-attr]
        gw = usdm_gateway(sim)
        journal = Journal(tmp_path / "journal")
        pf = Portfolio()
        held: list[str] = []
        try:
            await start_gateway(gw)
            rec = Reconciler(
                ReconcileSpec(),
                {"binance_usdm": gw},
                pf,
                journal,
                lambda: None,
                instruments=[USDM],
                futures=["binance_usdm"],
                log=lambda msg, **f: held.append(msg),
            )
            await rec.startup()
            # One price: the entry price is exact, and so is the entry value taken.
            assert pf.contract("binance_usdm", "BTCUSDT") == (atoms("0.002"), cost)
            assert pf.balance("binance_usdm", "BTC") == atoms("0.002")
            assert account.free["USDT"] == atoms("100000") - fee
            assert pf.balance("binance_usdm", "USDT") == account.free["USDT"]
            assert pf.inventory("BTC") == pf.inventory("USDT") == 0  # not a trade of ours
            assert (await rec.check("binance_usdm")).diffs == {}
            # A trade the engine did not make: the position and the wallet (its fee) differ.
            sim.exchange.place(BN_KEY, "BTCUSDT", "BUY", price, "0.002", "IOC", "other1")
            fee2 = sim.exchange.get(BN_KEY, client_id="other1").fee_total  # type: ignore[union-attr]
            check = await rec.check("binance_usdm")
            wallet = atoms("100000") - fee
            assert check.drifted == {
                "BTC": (atoms("0.002"), atoms("0.004")),
                "USDT": (wallet, wallet - fee2),
            }
            assert rec.held.keys() == {"binance_usdm"} and held
        finally:
            await gw.close()
            journal.close()
    entries = list(read_entries(tmp_path / "journal"))
    (entry,) = [e for e in entries if e["event"] == "reconciled"]
    # Atom amounts past 64 bits are journaled as decimal text (``as_int`` reads both).
    error = atoms("0.002") // 10**8 + 1  # 8 places of the entry price, plus an atom
    pos = entry["positions"]["BTCUSDT"]
    assert (pos["size"], as_int(pos["entry_value"]), pos["entry_error"]) == (2, cost, error)
    taken = entry["contracts"]["BTCUSDT"]
    assert taken["journal"] == [0, 0]
    assert [as_int(v) for v in taken["venue"]] == [atoms("0.002"), cost]
    assert as_int(entry["venue_balances"]["USDT"]) == atoms("100000") - fee
    assert {a: as_int(v) for a, v in entry["balances"].items()} == {
        "BTC": atoms("0.002"),
        "USDT": atoms("100000") - fee,
    }
    (drift,) = [e for e in entries if e["event"] == "balance_drift"]
    assert drift["positions"]["BTCUSDT"]["size"] == 4


class Books:
    """A live gateway's order events into the portfolio, as the engine's executor books
    them."""

    def __init__(self, pf: Portfolio) -> None:
        self.pf = pf

    def on_ack(self, order: Order, ts_ns: int) -> None:
        pass

    def on_fill(self, order: Order, fill: Fill) -> None:
        self.pf.on_fill(order, fill)

    def on_done(self, order: Order, status: OrderStatus, reason: str, ts_ns: int) -> None:
        self.pf.on_done(order, status)


_ids = iter(range(1, 10**6))


async def usdm_trade(
    gw: BinanceUsdmGateway, pf: Portfolio, side: Side, price: int, size: int
) -> None:
    o = Order(f"usdm{next(_ids)}", "arb", USDM, side, price, size)
    pf.reserve(o, Decimal(5))
    gw.submit(o)
    await until(lambda: pf.is_done(o.client_id), 5.0)


async def test_a_restart_with_a_perp_short_open_agrees_and_holds_on_real_drift(
    tmp_path: Path,
) -> None:
    """The engine shorts the perp across two levels (an average entry price with more than
    8 places) and buys part back; its books are the venue's to the atom (wallet, position,
    entry value). After a restart with the short open they agree at startup and on each
    round after more trades; a recovered entry value off by more than the venue's rounding
    is taken from the venue; a wallet that really moves (a charge the engine does not
    know) beyond tolerance holds the venue, and agreeing again releases it."""
    venue = "binance_usdm"
    async with BinanceSim(market="usdm", seed=5, interval_s=0.05) as sim:
        sim.pause()
        account = sim.exchange.add_account(BN_KEY, BN_SECRET, balances={"USDT": "100000"})
        book = sim.sources["BTCUSDT"].book
        gw = usdm_gateway(sim)
        pf = Portfolio({(venue, "USDT"): atoms("100000")})
        gw.set_listener(Books(pf))
        journal = Journal(tmp_path / "journal")
        try:
            await start_gateway(gw)
            bids = book.levels(BID)
            short = bids[0][1] + 7
            await usdm_trade(gw, pf, Side.SELL, bids[1][0], short)
            await usdm_trade(gw, pf, Side.BUY, book.levels(ASK)[0][0], 3)
            assert account.positions["BTCUSDT"] == -(short - 3)
            base = AtomScale.of(USDM).base(short - 3)
            assert pf.contract(venue, "BTCUSDT") == (-base, account.basis["BTCUSDT"])
            (pos,) = (await gw.positions()).values()
            assert pos.entry_value != account.basis["BTCUSDT"]  # rounded: 8 places shown
            assert abs(pos.entry_value - account.basis["BTCUSDT"]) <= pos.entry_error
            # The wallet moved by the buy-back's realized PnL and the fees only, in both.
            realized = sum(f.realized for o in sim.exchange.orders.values() for f in o.fills)
            fees = pf.fees_paid("USDT")
            assert realized != 0
            assert account.free["USDT"] == atoms("100000") + realized - fees
            assert pf.balance(venue, "USDT") == account.free["USDT"]

            # The restart: the portfolio as recovered, the venue as it is.
            rec = Reconciler(
                ReconcileSpec(drift_tolerance={"USDT": Money(Decimal("0.5"))}),
                {venue: gw},
                pf,
                journal,
                lambda: None,
                instruments=[USDM],
                futures=[venue],
            )
            checks = await rec.startup()
            assert checks[venue].diffs == {}
            # Its own exact entry value stays (the venue's is rounded).
            assert pf.contract(venue, "BTCUSDT") == (-base, account.basis["BTCUSDT"])

            # More trades after the restart; every round agrees to the atom.
            for side, size in ((Side.SELL, 4), (Side.BUY, 9), (Side.SELL, 2)):
                top = book.levels(BID if side is Side.SELL else ASK)[0][0]
                await usdm_trade(gw, pf, side, top, size)
                check = await rec.check(venue)
                assert check.skipped == "" and check.diffs == {}
            assert rec.held == {}

            # A charge the engine never traded (beyond 0.5 USDT): held.
            account.free["USDT"] -= atoms("0.6")
            check = await rec.check(venue)
            assert set(check.drifted) == {"USDT"}
            assert venue in rec.held
            # Within tolerance again: released.
            account.free["USDT"] += atoms("0.2")
            check = await rec.check(venue)
            assert check.drifted == {} and "USDT" in check.diffs
            assert rec.held == {}

            # A recovered entry value the venue disagrees with beyond its rounding: the
            # next start takes the venue's (the position agreed, so no balance moves).
            position, entry = pf.contract(venue, "BTCUSDT")
            pf.set_contract(USDM, position, entry + atoms("1"))
            again = await rec.startup()
            (pos,) = (await gw.positions()).values()
            assert pf.contract(venue, "BTCUSDT") == (position, pos.entry_value)
            assert "BTC" not in again[venue].diffs
        finally:
            await gw.close()
            journal.close()
    entries = list(read_entries(tmp_path / "journal"))
    (drift,) = [e for e in entries if e["event"] == "balance_drift"]
    assert drift["drift"]["USDT"]["tolerance"] == atoms("0.5")
    last = [e for e in entries if e["event"] == "reconciled"][-1]
    taken = last["contracts"]["BTCUSDT"]
    assert [as_int(v) for v in taken["journal"]] == [position, entry + atoms("1")]
    assert [as_int(v) for v in taken["venue"]] == [position, pos.entry_value]
