"""Cross-quote pairs through the engine: Binance BTCUSDT against Kraken XBT/USD, converted
through Coinbase's USDT-USD book (see tests/engine_rig.py for the quiet market: 30000 USDT,
30030 USD, 1 USDT = 1.0010 USD).

The edge is measured in USDT at the conversion book's touch, so a dislocation that is only
the USD/USDT rate fires nothing, a move of the rate alone can open (or close) an edge, and
no rate (the conversion book not LIVE) means no arb.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from arbengine.engine import PairConfig, quote_rate
from arbengine.orders import OrderStatus, atoms
from arbengine.venues._sync import OUT_SNAPSHOT
from tests.engine_rig import BINANCE, COINBASE, FEE, KRAKEN, OKX, Make, Rig


def kraken_bid(rig: Rig, bid: str, size: str = "0.01") -> None:
    """Lift Kraken's best bid to ``bid`` USD for ``size`` BTC."""
    rig.quote("kraken", [(bid, size), ("30029.9", "1")], [(str(Decimal(bid) + 1), "1")])


def expected_edge_bps(pb_usd: str, usdt_ask: str, pa_usdt: str) -> Decimal:
    """Sell on Kraken at ``pb_usd``, the USD worth 1/ask USDT each; buy on Binance at
    ``pa_usdt``; both legs pay 7.5 bps. Exact, in bps of the USDT cost."""
    f = Fraction(FEE) / 10_000
    pb, pa = Fraction(pb_usd) / Fraction(usdt_ask), Fraction(pa_usdt)
    edge = (pb * (1 - f) - pa * (1 + f)) / pa * 10_000
    return Decimal(edge.numerator) / Decimal(edge.denominator)


async def test_a_usd_dislocation_fires_measured_in_usdt(make: Make) -> None:
    rig = make(pairs=("xq",))
    kraken_bid(rig, "30200.0")
    (arb,) = rig.arbs("xq")
    buy, sell = arb.legs
    assert (buy.venue, sell.venue) == ("binance", "kraken")
    assert buy.price == BINANCE.price.parse("30001.00") and sell.price == KRAKEN.price.parse(
        "30200.0"
    )
    want = expected_edge_bps("30200.0", "1.0011", "30001.00")
    assert abs(arb.opp.edge_bps - want) <= Decimal("0.0001")
    assert Decimal(39) < arb.opp.edge_bps < Decimal(41)  # not the raw 66 bps of 30200 vs 30001
    await rig.settle()
    assert [leg.status for leg in arb.legs] == [OrderStatus.FILLED] * 2
    # The Kraken leg earned USD, the Binance leg spent USDT: both books hold the BTC flat.
    assert rig.portfolio.inventory("BTC") == 0
    assert rig.portfolio.inventory("USD") > 0 > rig.portfolio.inventory("USDT")
    rig.verify_journal()


async def test_the_rate_alone_decides(make: Make) -> None:
    rig = make(pairs=("xq",))
    # USDT at 1.0060 USD and Kraken quiet at that rate: nothing either way. (Moved while the
    # conversion book is out of LIVE: either move alone would be a real edge.)
    rig.gap("coinbase")
    rig.quote("kraken", [("30179.9", "1")], [("30180.1", "1")])
    rig.quote("coinbase", [("1.0059", "1000")], [("1.0061", "1000")])
    assert rig.snapshot("coinbase") == OUT_SNAPSHOT
    assert not rig.arbs("xq")
    # Kraken's 30200 USD bid is then only 30016.9 USDT: 5 bps over Binance's ask, under fees.
    kraken_bid(rig, "30200.0")
    assert not rig.arbs("xq") and rig.engine.pairs[0].evaluations >= 3
    # The rate comes back: the conversion book's own update re-runs the pair, and it fires.
    rig.quiet("coinbase")
    (arb,) = rig.arbs("xq")
    assert arb.legs[1].venue == "kraken"
    await rig.settle()
    rig.verify_journal()


async def test_no_rate_no_arb(make: Make) -> None:
    rig = make(pairs=("xq",))
    rig.gap("coinbase")  # the conversion book leaves LIVE
    kraken_bid(rig, "30200.0")
    kraken_bid(rig, "30210.0")
    assert not rig.arbs("xq") and not rig.sent()
    assert rig.snapshot("coinbase") == OUT_SNAPSHOT  # LIVE again: the pair re-runs and fires
    assert len(rig.arbs("xq")) == 1
    await rig.settle()


async def test_marks_walk_through_the_conversion_book(make: Make) -> None:
    rig = make(pairs=("xq",))
    marks = rig.engine.marks()
    assert marks["BTC"] == Decimal("30000")  # Binance's mid, already in USDT
    assert marks["USD"] == Decimal(1) / Decimal("1.0010")  # USDT-USD mid, inverted
    rig.engine.refresh()  # values USD holdings without a KeyError
    assert rig.portfolio.equity(marks) > atoms("400000")


def test_quote_rates_round_against_us() -> None:
    cfg = PairConfig(
        "xq", BINANCE, KRAKEN, FEE, FEE, Decimal(5), conversion=COINBASE
    )  # A quote USDT = conversion base: rates are 1/price
    bid, ask = COINBASE.price.parse("1.0009"), COINBASE.price.parse("1.0011")
    pay, get = quote_rate(cfg, bid, ask)
    assert pay * Decimal("1.0009") >= 1 and get * Decimal("1.0011") <= 1
    assert pay - 1 / Decimal("1.0009") < Decimal("1e-30")
    # B's quote as the conversion base (a USD-USDT book): the touch itself.
    usd_usdt = type(COINBASE)("x", "USD-USDT", "USD", "USDT", "0.0001", "0.01")
    cfg2 = PairConfig("xq", BINANCE, KRAKEN, FEE, FEE, Decimal(5), conversion=usd_usdt)
    assert quote_rate(cfg2, 9989, 9991) == (Decimal("0.9991"), Decimal("0.9989"))


@pytest.mark.parametrize(
    ("b", "conversion", "message"),
    [
        (KRAKEN, None, "quotes differ .* no conversion instrument"),
        (KRAKEN, OKX, "conversion okx:BTC-USDT trades BTC/USDT, not USDT against USD"),
        (OKX, COINBASE, "both sides are quoted in USDT"),
    ],
)
def test_pair_config_refuses_bad_conversions(b: Any, conversion: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PairConfig("p", BINANCE, b, FEE, FEE, Decimal(5), conversion=conversion)
