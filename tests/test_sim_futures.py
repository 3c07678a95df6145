"""The simulator's futures accounting (one-way mode, as Binance USDⓈ-M and Bybit linear keep
it): a signed position and a signed basis per symbol, realized PnL into the wallet on every
reducing fill. The books telescope exactly: after any sequence of trades, wallet minus the
open bases is the start less every trade's signed notional and its fees, to the atom."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.venues.sim.exchange import ATOMS, SimExchange, SimMarket, SimOrder
from arbengine.venues.sim.faults import FaultInjector
from arbengine.venues.sim.model import ASK, BID, SimInstrument, TrueBook

KEY = "fut-key"
START = "1000000"
PERP = SimInstrument("BTCUSDT", "0.10", "0.001", 2, 3, "100.00", "0.5", "BTC-USDT")
# A contract of 0.01 base, so the position in base is lots x lot x multiplier.
CONTRACT = SimInstrument("ETHUSDT", "0.01", "1", 2, 0, "2000.00", "10", "ETH-USDT")


class Venue:
    """A futures ``SimExchange`` whose books the test sets: one level a side at the price
    the next trade should take."""

    def __init__(self, fee_bps: str = "0") -> None:
        self.books = {"BTCUSDT": TrueBook(PERP), "ETHUSDT": TrueBook(CONTRACT)}
        markets = {
            "BTCUSDT": SimMarket(PERP, "BTC", "USDT"),
            "ETHUSDT": SimMarket(CONTRACT, "ETH", "USDT", multiplier="0.01"),
        }
        self.ex = SimExchange(
            markets, self.books.__getitem__, faults=FaultInjector(1), fee_bps=fee_bps, futures=True
        )
        self.account = self.ex.add_account(KEY, "s", balances={"USDT": START})
        self.ids = 0

    def quote(self, symbol: str, price: int) -> None:
        book = self.books[symbol]
        book.bids.clear()
        book.asks.clear()
        book.set(BID, price, 10**9)
        book.set(ASK, price, 10**9)

    def trade(self, symbol: str, side: str, price: int, lots: int) -> SimOrder:
        self.quote(symbol, price)
        inst = self.ex.market(symbol).instrument
        self.ids += 1
        order = self.ex.place(
            KEY,
            symbol,
            side,
            inst.price.format(price),
            inst.size.format(lots),
            "IOC",
            f"c{self.ids}",
        )
        assert order.status == "FILLED" and len(order.fills) == 1
        return order

    @property
    def wallet(self) -> int:
        return self.account.free["USDT"]


def usdt(text: str) -> int:
    return int(Decimal(text) * ATOMS)


def test_a_long_sold_higher_realizes_the_difference() -> None:
    v = Venue()
    buy = v.trade("BTCUSDT", "BUY", 1000, 1000)  # 1 BTC at 100.0
    assert buy.fills[0].realized == 0
    assert v.account.positions["BTCUSDT"] == 1000
    assert v.account.basis["BTCUSDT"] == usdt("100")
    assert v.wallet == usdt(START)  # opening moves no cash: the notional is the basis
    sell = v.trade("BTCUSDT", "SELL", 1100, 1000)  # at 110.0
    assert sell.fills[0].realized == usdt("10")
    assert v.wallet == usdt(START) + usdt("10")
    assert v.account.positions["BTCUSDT"] == 0 and v.account.basis["BTCUSDT"] == 0


def test_a_short_bought_back_lower_realizes_and_partial_closes_split_the_basis() -> None:
    v = Venue()
    v.trade("BTCUSDT", "SELL", 1000, 1000)  # short 1 at 100.0
    v.trade("BTCUSDT", "SELL", 1030, 2000)  # short 2 more at 103.0: basis -306
    assert v.account.positions["BTCUSDT"] == -3000
    assert v.account.basis["BTCUSDT"] == -usdt("306")
    assert v.ex.entry_price(KEY, "BTCUSDT") == "102.00000000"
    buy = v.trade("BTCUSDT", "BUY", 990, 1000)  # buy 1 back at 99.0: closes -102 of basis
    assert buy.fills[0].realized == usdt("3")
    assert v.account.basis["BTCUSDT"] == -usdt("204")
    assert v.ex.entry_price(KEY, "BTCUSDT") == "102.00000000"
    loss = v.trade("BTCUSDT", "BUY", 1050, 2000)  # the rest at 105.0: a loss
    assert loss.fills[0].realized == -usdt("6")
    assert v.wallet == usdt(START) - usdt("3")
    assert v.ex.entry_price(KEY, "BTCUSDT") == "0.0"


def test_a_flip_closes_all_then_opens_the_rest_at_the_fill_price() -> None:
    v = Venue()
    v.trade("BTCUSDT", "BUY", 1000, 2000)  # long 2 at 100.0
    flip = v.trade("BTCUSDT", "SELL", 1200, 5000)  # sell 5 at 120.0: +40, then short 3
    assert flip.fills[0].realized == usdt("40")
    assert v.account.positions["BTCUSDT"] == -3000
    assert v.account.basis["BTCUSDT"] == -usdt("360")
    assert v.ex.entry_price(KEY, "BTCUSDT") == "120.00000000"
    assert v.wallet == usdt(START) + usdt("40")


def test_truncation_and_entry_price_rounding() -> None:
    v = Venue()
    v.trade("BTCUSDT", "BUY", 1000, 1)  # 0.001 at 100.0
    v.trade("BTCUSDT", "BUY", 1001, 2)  # 0.002 at 100.1: basis 0.3002 over 0.003
    assert v.ex.entry_price(KEY, "BTCUSDT") == "100.06666667"  # half up at 8 places
    assert v.ex.entry_price(KEY, "BTCUSDT", places=2) == "100.07"
    sell = v.trade("BTCUSDT", "SELL", 1000, 1)  # closes a third of 0.3002: truncated
    closed = usdt("0.3002") // 3
    assert sell.fills[0].realized == usdt("0.1") - closed
    assert v.account.basis["BTCUSDT"] == usdt("0.3002") - closed


def test_contracts_count_in_base_and_fees_stay_out_of_realized() -> None:
    v = Venue(fee_bps="10")
    v.trade("ETHUSDT", "BUY", 200_000, 50)  # 50 contracts of 0.01 ETH at 2000.00
    assert v.account.basis["ETHUSDT"] == usdt("1000")
    assert v.ex.entry_price(KEY, "ETHUSDT") == "2000.00000000"
    sell = v.trade("ETHUSDT", "SELL", 210_000, 50)
    fill = sell.fills[0]
    assert fill.realized == usdt("50") and fill.fee == usdt("1.05")
    assert v.wallet == usdt(START) - usdt("1") + usdt("50") - usdt("1.05")


def test_unrealized_is_the_position_at_the_books_mid_less_its_basis() -> None:
    v = Venue()
    v.trade("BTCUSDT", "SELL", 1000, 2000)  # short 2 at 100.0
    book = v.books["BTCUSDT"]
    book.bids.clear()
    book.asks.clear()
    book.set(BID, 950, 5)
    book.set(ASK, 951, 5)  # mid 95.05
    assert v.ex.unrealized(KEY, "BTCUSDT") == usdt("9.9")
    book.asks.clear()
    assert v.ex.unrealized(KEY, "BTCUSDT") == 0  # no mid: nothing claimed


trades = st.lists(
    st.tuples(
        st.sampled_from(["BTCUSDT", "ETHUSDT"]),
        st.sampled_from(["BUY", "SELL"]),
        st.integers(1, 5000),  # ticks (prices differ widely: real gains and losses)
        st.integers(1, 3000),  # lots
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(trades, st.sampled_from(["0", "2.5", "10"]))
def test_the_books_telescope_exactly(seq: list[tuple[str, str, int, int]], fee_bps: str) -> None:
    v = Venue(fee_bps)
    spent = 0  # signed notional, buys positive
    fees = 0
    realized = 0
    for symbol, side, price, lots in seq:
        order = v.trade(symbol, side, price, lots)
        value = v.ex.notional(symbol, price, lots)
        spent += value if side == "BUY" else -value
        fees += order.fee_total
        realized += order.fills[0].realized
        for s, position in v.account.positions.items():
            basis = v.account.basis[s]
            # The basis has the position's sign and is zero exactly when flat.
            assert (basis > 0) == (position > 0) and (basis < 0) == (position < 0)
    basis_total = sum(v.account.basis.values())
    assert v.wallet - basis_total == usdt(START) - spent - fees
    assert v.wallet == usdt(START) + realized - fees
