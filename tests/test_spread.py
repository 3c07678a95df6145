"""The spread calculator against hand-worked cases and a brute-force reference."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from arbengine._core import (
    BELOW_MIN_NOTIONAL,
    BELOW_MIN_SIZE,
    BUY_A_SELL_B,
    BUY_B_SELL_A,
    EMPTY_BOOK,
    NO_CAPACITY,
    NO_EDGE,
    NO_RATE,
    OK,
    Book,
    FixedPointError,
    Instrument,
    SpreadCalculator,
    SpreadError,
    SpreadResult,
)
from tests.reference import spread as reference
from tests.reference.spread import Leg, RefResult, reference_spread

Levels = list[tuple[int, int]]

RATE_DECIMALS = 15  # rates are held x 10**15 (SpreadResult.rate_decimals)


def cross_calc(
    a: Instrument,
    b: Instrument,
    fee_a: str | Decimal,
    fee_b: str | Decimal,
    min_edge: str | Decimal = "0",
    max_size: str | Decimal | None = None,
) -> SpreadCalculator:
    return SpreadCalculator(a, b, fee_a, fee_b, min_edge, max_size, cross_quote=True)


def spot(venue: str, tick: str = "0.01", lot: str = "0.001", **kw: Any) -> Instrument:
    return Instrument(venue, "BTCUSDT", "BTC", "USDT", tick, lot, **kw)


def book(bids: Levels, asks: Levels) -> Book:
    b = Book()
    b.apply(bids, asks)
    return b


# --- hand-worked cases ------------------------------------------------------------------


def test_walks_both_books_and_rounds_to_both_lots() -> None:
    a = spot("a", lot="0.001")
    b = Instrument("b", "BTC-USDT-SWAP", "BTC", "USDT", "0.1", "1", multiplier="0.01")
    calc = SpreadCalculator(a, b, "10", "5", min_edge_bps="0")
    # A asks: 100.00 x 0.005, 100.10 x 0.050; B bids: 101.0 x 3 contracts (0.03), 100.5 x 1.
    book_a = book([(9_900, 1_000)], [(10_000, 5), (10_010, 50)])
    book_b = book([(1_010, 3), (1_005, 1)], [(1_020, 7)])
    r = calc.calc(book_a, book_b, BUY_A_SELL_B)
    assert r.status == OK and r.ok
    # Marginal edges: 100.00 vs 101.0 and 100.10 vs 101.0 pass; 100.10 vs 100.5 nets
    # 100.5*0.9995 - 100.10*1.001 = 100.44975 - 100.2001 > 0: passes too. Walk ends with
    # B's bids (0.04 BTC), already on both lot grids (0.001 and 0.01).
    assert r.size == Decimal("0.04")
    assert (r.buy_size, r.sell_size) == (40, 4)
    assert (r.buy_limit, r.sell_limit) == (10_010, 1_005)
    assert (r.buy_levels, r.sell_levels) == (2, 2)
    assert r.buy_notional == Decimal("0.005") * 100 + Decimal("0.035") * Decimal("100.10")
    assert r.sell_notional == Decimal("0.03") * 101 + Decimal("0.01") * Decimal("100.5")
    expected = r.sell_notional * Decimal("0.9995") - r.buy_notional * Decimal("1.001")
    assert r.profit == expected
    assert r.buy_vwap == pytest.approx(float(r.buy_notional / r.size))


def test_threshold_is_inclusive_and_exact() -> None:
    a, b = spot("a"), spot("b")
    # Buy 100.00 at 0 fee, sell 100.10 at 0 fee: edge exactly 10 bps.
    book_a = book([(9_000, 1)], [(10_000, 1_000)])
    book_b = book([(10_010, 1_000)], [(11_000, 1)])
    at = SpreadCalculator(a, b, "0", "0", min_edge_bps="10")
    assert at.calc(book_a, book_b, BUY_A_SELL_B).status == OK
    above = SpreadCalculator(a, b, "0", "0", min_edge_bps="10.01")
    r = above.calc(book_a, book_b, BUY_A_SELL_B)
    assert r.status == NO_EDGE
    assert r.top_edge_bps == pytest.approx(10.0)


def test_directions_and_top_edges() -> None:
    a, b = spot("a"), spot("b")
    calc = SpreadCalculator(a, b, "10", "10")
    book_a = book([(10_000, 10)], [(10_001, 10)])
    book_b = book([(10_100, 10)], [(10_101, 10)])
    ab, ba = calc.top_edges(book_a, book_b)
    assert ab == pytest.approx((101.00 * 0.999 - 100.01 * 1.001) / (100.01 * 1.001) * 1e4)
    assert ba == pytest.approx((100.00 * 0.999 - 101.01 * 1.001) / (101.01 * 1.001) * 1e4)
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).ok
    assert calc.calc(book_a, book_b, BUY_B_SELL_A).status == NO_EDGE


def test_empty_books_give_empty_status_and_nan_edges() -> None:
    a, b = spot("a"), spot("b")
    calc = SpreadCalculator(a, b, "0", "0")
    full = book([(10_000, 1)], [(10_001, 1)])
    asks_only = book([], [(10_001, 1)])
    r = calc.calc(full, asks_only, BUY_A_SELL_B)  # B has no bids to sell into
    assert r.status == EMPTY_BOOK and r.base_qty == 0 and math.isnan(r.top_edge_bps)
    ab, ba = calc.top_edges(full, asks_only)
    assert math.isnan(ab) and not math.isnan(ba)


def test_caps_max_size_and_balances() -> None:
    a, b = spot("a"), spot("b")
    book_a = book([(9_000, 1)], [(10_000, 1_000)])  # 1 BTC at 100.00
    book_b = book([(10_100, 1_000)], [(11_000, 1)])  # 1 BTC at 101.00
    calc = SpreadCalculator(a, b, "0", "0", max_size="0.25")
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).size == Decimal("0.25")
    calc.max_size = None
    calc.set_balances(quote_a="50.05")  # 0.5005 BTC worth: lot 0.001 -> 0.500
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).size == Decimal("0.5")
    calc.set_balances(quote_a="50.05", base_b="0.1234")
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).size == Decimal("0.123")
    calc.set_balances(base_b="0")
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).status == NO_CAPACITY
    calc.set_balances(quote_a="0.00001")  # cannot buy one base quantum
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).status == NO_CAPACITY


def test_fee_counts_against_the_quote_balance() -> None:
    a, b = spot("a"), spot("b")
    book_a = book([(9_000, 1)], [(10_000, 1_000)])
    book_b = book([(10_100, 1_000)], [(11_000, 1)])
    calc = SpreadCalculator(a, b, "100", "0")  # 1% buy fee
    calc.set_balances(quote_a="10.1")  # exactly 0.1 BTC at 100 * 1.01
    r = calc.calc(book_a, book_b, BUY_A_SELL_B)
    assert r.size == Decimal("0.1")
    calc.set_balances(quote_a="10.0999")
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).size == Decimal("0.099")


def test_minimums() -> None:
    book_a = book([(9_000, 1)], [(10_000, 3)])  # 0.003 BTC at 100
    book_b = book([(10_100, 1_000)], [(11_000, 1)])
    small = SpreadCalculator(spot("a", min_size="0.005"), spot("b"), "0", "0")
    assert small.calc(book_a, book_b, BUY_A_SELL_B).status == BELOW_MIN_SIZE
    notional = SpreadCalculator(spot("a"), spot("b", min_notional="0.31"), "0", "0")
    r = notional.calc(book_a, book_b, BUY_A_SELL_B)
    assert r.status == BELOW_MIN_NOTIONAL and r.base_qty == 0 and r.buy_size == 0
    ok = SpreadCalculator(spot("a"), spot("b", min_notional="0.303"), "0", "0")
    assert ok.calc(book_a, book_b, BUY_A_SELL_B).ok


def test_lot_rounding_can_leave_nothing() -> None:
    a = spot("a", lot="0.001")
    b = spot("b", lot="0.01")
    book_a = book([(9_000, 1)], [(10_000, 9)])  # 0.009 BTC: less than one lot of B
    book_b = book([(10_100, 100)], [(11_000, 1)])
    r = SpreadCalculator(a, b, "0", "0").calc(book_a, book_b, BUY_A_SELL_B)
    assert r.status == BELOW_MIN_SIZE


def test_book_sizes_finer_than_the_order_lot() -> None:
    # Binance spot: lot 0.00001 but resting orders from before a lot change show 6 decimals.
    a = spot("a", lot="0.00001", size_step="0.000001")
    b = spot("b", lot="0.001")
    assert a.lot == 10 and a.size.step == "0.000001"
    book_a = book([(9_000, 1)], [(10_000, 25_426_189)])  # 25.426189 BTC at 100.00
    book_b = book([(10_100, 1_234)], [(11_000, 1)])  # 1.234 BTC at 101.00
    r = SpreadCalculator(a, b, "0", "0").calc(book_a, book_b, BUY_A_SELL_B)
    assert r.ok and r.size == Decimal("1.234")
    assert (r.buy_size, r.sell_size) == (1_234_000, 1_234)  # in each venue's size units
    with pytest.raises(FixedPointError, match=r"off the 0\.000001 grid"):
        spot("c", lot="0.0000005", size_step="0.000001")


def test_calc_into_reuses_the_result() -> None:
    a, b = spot("a"), spot("b")
    calc = SpreadCalculator(a, b, "0", "0")
    book_a = book([(9_000, 1)], [(10_000, 5)])
    book_b = book([(10_100, 5)], [(11_000, 1)])
    out = SpreadResult()
    calc.calc_into(book_a, book_b, BUY_A_SELL_B, out)
    assert out.ok and out.base_qty == 5
    calc.calc_into(book_a, book_b, BUY_B_SELL_A, out)
    assert out.status == NO_EDGE and out.base_qty == 0 and out.direction == BUY_B_SELL_A


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"b": spot("a")}, "with itself"),
        ({"b": Instrument("b", "ETHUSDT", "ETH", "USDT", "0.01", "0.001")}, "mismatched assets"),
        ({"b": Instrument("b", "BTCUSD", "BTC", "USD", "0.01", "0.001")}, "mismatched quotes"),
        ({"fee_a": 7.5}, "float"),
        ({"fee_a": "0.001"}, "finer than 0.01 bp"),
        ({"fee_a": "-1"}, "outside"),
        ({"fee_a": "abc"}, "not a number"),
        ({"min_edge": "20000"}, "outside"),
        ({"max_size": "-1"}, "must be a finite amount"),
        ({"max_size": 0.5}, "float"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "b": spot("b"),
        "fee_a": "10",
        "min_edge": "0",
        "max_size": None,
    }
    args.update(kwargs)
    with pytest.raises(SpreadError, match=message):
        SpreadCalculator(
            spot("a"),
            args["b"],  # type: ignore[arg-type]
            args["fee_a"],  # type: ignore[arg-type]
            "10",
            min_edge_bps=args["min_edge"],  # type: ignore[arg-type]
            max_size=args["max_size"],  # type: ignore[arg-type]
        )


def test_bad_instruments_and_calls_are_refused() -> None:
    with pytest.raises(FixedPointError, match="zero"):
        spot("a", tick="0")
    with pytest.raises(FixedPointError, match=r"off the 0\.001 grid"):
        spot("a", min_size="0.0005")
    with pytest.raises(FixedPointError, match="min_notional"):
        spot("a", min_notional="1e3")
    calc = SpreadCalculator(spot("a"), spot("b"), "0", "0")
    one = book([(1, 1)], [(2, 1)])
    with pytest.raises(SpreadError, match="direction"):
        calc.calc(one, book([(1, 1)], [(2, 1)]), 2)
    with pytest.raises(SpreadError, match="same book"):
        calc.calc(one, one, BUY_A_SELL_B)
    with pytest.raises(TypeError):
        calc.calc(one, None, BUY_A_SELL_B)  # type: ignore[arg-type]
    with pytest.raises(SpreadError, match="quote balance"):
        calc.set_balances(quote_a=1.5)  # type: ignore[arg-type]


# --- differential: compiled walk vs brute-force reference ------------------------------

TICKS = ["0.01", "0.1", "0.5", "1", "0.001", "5"]
LOTS = ["0.00001", "0.001", "0.01", "0.1", "1", "0.5"]
MULTS = ["1", "1", "0.01", "0.001", "10"]


@st.composite
def instruments(draw: st.DrawFn, venue: str, quote: str = "USDT") -> Instrument:
    lot = draw(st.sampled_from(LOTS))
    lot_dec = Decimal(lot)
    # Sometimes the book's size step is finer than the order lot (as on Binance spot).
    finer = draw(st.sampled_from([1, 1, 1, 10, 100]))
    return Instrument(
        venue,
        "X",
        "BTC",
        quote,
        draw(st.sampled_from(TICKS)),
        lot,
        multiplier=draw(st.sampled_from(MULTS)),
        min_size=format(lot_dec * draw(st.integers(0, 3)), "f"),
        min_notional=draw(st.sampled_from(["0", "0", "1", "10", "0.001", "250"])),
        size_step=format(lot_dec / finer, "f") if finer > 1 else None,
    )


@st.composite
def side_levels(
    draw: st.DrawFn, inst: Instrument, mid: Fraction, ask: bool, max_levels: int = 12
) -> Levels:
    tick = Fraction(Decimal(inst.price.step))
    mid_ticks = max(2, int(mid / tick))
    # Mostly non-empty: an empty side only ever yields EMPTY_BOOK, which is cheap to cover.
    min_levels = draw(st.sampled_from([0, 1, 1, 1, 1, 1, 1, 1]))
    offsets = draw(
        st.lists(st.integers(1, 40), min_size=min_levels, max_size=max_levels, unique=True)
    )
    out = []
    for off in sorted(offsets):
        price = mid_ticks + off if ask else mid_ticks - off
        if price > 0:
            out.append((price, draw(st.integers(1, 2_000))))
    return out


amounts = st.one_of(
    st.none(),
    st.decimals(min_value=0, max_value=5_000, places=4, allow_nan=False, allow_infinity=False),
)


@st.composite
def quote_rates(
    draw: st.DrawFn, exponents: tuple[int, ...] = (-1, 0, 0, 0, 1)
) -> tuple[Decimal, Decimal]:
    """(pay, get) with 1 to 20 significant digits, so holding them x 10**15 often rounds."""
    digits = draw(st.integers(1, 20))
    n = draw(st.integers(10 ** (digits - 1), 10**digits - 1))
    get = Decimal(n).scaleb(draw(st.sampled_from(exponents)) - digits + 1)  # [1, 10) * 10**e
    spread = draw(st.sampled_from([0, 0, 1, 37, 10_000, 500_000]))  # pay/get - 1, in 1e-8
    with localcontext() as ctx:
        ctx.prec = 60
        return get * (1 + Decimal(spread).scaleb(-8)), get


@dataclass(frozen=True)
class RateLeg(Leg):
    """A reference leg whose quote converts into the pair's quote at ``rate``.

    The brute-force reference weighs prices only through 1 + fee (the buying leg) and
    1 - fee (the selling leg): in its marginal edge test and in the profit. Folding the rate
    into that factor, (1 + fee) * pay or (1 - fee) * get, converts exactly those into the
    pair's quote, while the book curves, notionals, limits and minimums stay in the leg's
    own quote. Its one other use, the buying leg's quote balance, is in the leg's own quote:
    reference_cross scales that balance by the same rate so the comparison is unchanged.
    """

    rate: Fraction = Fraction(1)
    buying: bool = True

    @property
    def fee(self) -> Fraction:
        own = Fraction(self.fee_bps) / 10_000
        return (1 + own) * self.rate - 1 if self.buying else 1 - (1 - own) * self.rate


def reference_cross(
    buy_asks: Levels,
    sell_bids: Levels,
    buy: Leg,
    sell: Leg,
    buy_rate: Fraction,
    sell_rate: Fraction,
    min_edge_bps: Decimal,
    max_size: Decimal | None = None,
    quote_balance: Decimal | None = None,
    base_balance: Decimal | None = None,
    size_decimals: int | None = None,
) -> tuple[RefResult, Fraction]:
    """reference_spread with each leg's quote converted into the pair's quote at an exact
    rate (pair-quote units per unit of the leg's quote; 1 for A's leg). Returns the result
    (cost and proceeds in each leg's own quote, profit in the pair's quote) and cost_ref,
    the buy leg's cost in the pair's quote."""
    if quote_balance is not None:
        # Exact: the rate is a decimal with 15 places and the balance has a few.
        with localcontext() as ctx:
            ctx.prec = 100
            scaled = quote_balance * Decimal(buy_rate.numerator) / Decimal(buy_rate.denominator)
        assert Fraction(scaled) == Fraction(quote_balance) * buy_rate
        quote_balance = scaled
    result = reference_spread(
        buy_asks,
        sell_bids,
        RateLeg(buy.instrument, buy.fee_bps, buy_rate, buying=True),
        RateLeg(sell.instrument, sell.fee_bps, sell_rate, buying=False),
        min_edge_bps,
        max_size=max_size,
        quote_balance=quote_balance,
        base_balance=base_balance,
        size_decimals=size_decimals,
    )
    return result, result.cost * buy_rate


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_walk_equals_brute_force(data: st.DataObject) -> None:
    # Anything goes: either direction may have an edge, books may be empty.
    check_against_reference(data, dislocation_bps=(-300, 300), max_fee_bps=3_000)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_walk_equals_brute_force_when_dislocated(data: st.DataObject) -> None:
    # B always bids well above A: the walk, caps, rounding and minimums do the deciding.
    check_against_reference(data, dislocation_bps=(60, 400), max_fee_bps=1_000)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cross_quote_walk_equals_brute_force(data: st.DataObject) -> None:
    check_against_reference(data, dislocation_bps=(-300, 300), max_fee_bps=3_000, cross=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cross_quote_walk_equals_brute_force_when_dislocated(data: st.DataObject) -> None:
    check_against_reference(data, dislocation_bps=(60, 400), max_fee_bps=1_000, cross=True)


def check_against_reference(
    data: st.DataObject, dislocation_bps: tuple[int, int], max_fee_bps: int, cross: bool = False
) -> None:
    """Random pair, books, caps and balances: the compiled answer equals the reference's.

    ``cross``: B is quoted in USD or USDT (drawn) against A's USDT, on a cross-quote
    calculator with a drawn (pay, get) rate; B's book is centred on A's mid converted at
    ``get``, then dislocated."""
    a = data.draw(instruments("a"))
    b = data.draw(
        instruments("b", data.draw(st.sampled_from(["USD", "USDT"])) if cross else "USDT")
    )
    fee_a = Decimal(data.draw(st.integers(0, max_fee_bps))) / 100
    fee_b = Decimal(data.draw(st.integers(0, max_fee_bps))) / 100
    min_edge = Decimal(data.draw(st.integers(-5_000, 5_000))) / 100
    if dislocation_bps[0] > 0:
        min_edge = Decimal(data.draw(st.integers(-2_000, 2_000))) / 100
    max_size = data.draw(amounts)
    try:
        if cross:
            calc = cross_calc(a, b, fee_a, fee_b, min_edge, max_size)
        else:
            calc = SpreadCalculator(a, b, fee_a, fee_b, min_edge, max_size)
    except SpreadError:
        event("refused")
        return  # grids too far apart for one common scale: refused, nothing to compare
    rates = (Fraction(1), Fraction(1))  # (pay, get) as held; 1 = no conversion
    if cross:
        pay, get = data.draw(quote_rates())
        calc.set_quote_rate(pay, get)
        held = calc.quote_rate
        assert held is not None
        rates = (Fraction(held[0]), Fraction(held[1]))
        assert rates[0] >= Fraction(pay) and rates[1] <= Fraction(get)  # rounded against us
    mid = Fraction(data.draw(st.integers(50, 5_000)))
    mid_b = mid / rates[1] * (1 + Fraction(data.draw(st.integers(*dislocation_bps)), 10_000))
    books = []
    for inst, m in ((a, mid), (b, mid_b)):
        books.append(
            book(data.draw(side_levels(inst, m, ask=False)), data.draw(side_levels(inst, m, True)))
        )
    # In the dislocated runs balances are mostly unlimited so more cases reach OK.
    balance = amounts if dislocation_bps[0] <= 0 else st.one_of(st.none(), st.none(), amounts)
    balances = {k: data.draw(balance) for k in ("quote_a", "base_a", "quote_b", "base_b")}
    calc.set_balances(**balances)
    legs = (Leg(a, fee_a), Leg(b, fee_b))
    for direction in (BUY_A_SELL_B, BUY_B_SELL_A):
        bi = 0 if direction == BUY_A_SELL_B else 1
        si = 1 - bi
        names = "ab"
        got = calc.calc(books[0], books[1], direction)
        # A's quote is the pair's: only B's leg converts, at pay when buying, get when selling.
        want, cost_ref = reference_cross(
            books[bi].asks(),
            books[si].bids(),
            legs[bi],
            legs[si],
            buy_rate=rates[0] if bi == 1 else Fraction(1),
            sell_rate=rates[1] if si == 1 else Fraction(1),
            min_edge_bps=min_edge,
            max_size=max_size,
            quote_balance=balances[f"quote_{names[bi]}"],
            base_balance=balances[f"base_{names[si]}"],
            size_decimals=calc.size_decimals,
        )
        if not cross:
            # With no rate involved the adapter must be the reference itself.
            plain = reference_spread(
                books[bi].asks(),
                books[si].bids(),
                legs[bi],
                legs[si],
                min_edge,
                max_size=max_size,
                quote_balance=balances[f"quote_{names[bi]}"],
                base_balance=balances[f"base_{names[si]}"],
                size_decimals=calc.size_decimals,
            )
            assert plain == want
        event(got.status_name)
        assert_same(got, want, calc.size_decimals, calc.notional_decimals, cost_ref, cross)


def assert_same(
    got: Any,
    want: RefResult,
    size_dec: int,
    notional_dec: int,
    cost_ref: Fraction | None = None,
    cross: bool = False,
) -> None:
    """``got`` is a SpreadResult (typed Any: see the note on the cross-quote API above)."""
    assert got.status_name == _name(want.status), (got, want)
    assert got.rate_decimals == (RATE_DECIMALS if cross else 0)
    if want.status != OK:
        assert got.base_qty == 0
        assert got.profit_scaled == 0 and got.cost_ref == 0
        return
    assert Fraction(got.base_qty, 10**size_dec) == want.size
    assert (got.buy_size, got.sell_size) == (want.buy_size, want.sell_size)
    assert (got.buy_limit, got.sell_limit) == (want.buy_limit, want.sell_limit)
    assert (got.buy_levels, got.sell_levels) == (want.buy_levels, want.sell_levels)
    assert Fraction(got.cost_quanta, 10**notional_dec) == want.cost
    assert Fraction(got.proceeds_quanta, 10**notional_dec) == want.proceeds
    assert got.profit_decimals == notional_dec + 6 + got.rate_decimals
    assert Fraction(got.profit_scaled, 10**got.profit_decimals) == want.profit
    with localcontext() as ctx:
        ctx.prec = 100  # cross-quote profits carry more digits than the default 28
        assert got.profit == Decimal(want.profit.numerator) / Decimal(want.profit.denominator)
    if cost_ref is not None:
        assert Fraction(got.cost_ref) == cost_ref
    # The integer edge the gates compare is exactly profit / cost_ref in bps.
    num, den = got.edge_ratio
    assert den > 0
    assert Fraction(num, den) == want.profit / Fraction(got.cost_ref) * 10_000
    if not cross:
        assert got.cost_ref == got.buy_notional


_NAMES = ["OK", "EMPTY_BOOK", "NO_EDGE", "NO_CAPACITY", "BELOW_MIN_SIZE", "BELOW_MIN_NOTIONAL"]


def _name(status: int) -> str:
    return _NAMES[status]


def test_reference_statuses_line_up_with_the_core() -> None:
    core = (OK, EMPTY_BOOK, NO_EDGE, NO_CAPACITY, BELOW_MIN_SIZE, BELOW_MIN_NOTIONAL)
    ref = (
        reference.OK,
        reference.EMPTY_BOOK,
        reference.NO_EDGE,
        reference.NO_CAPACITY,
        reference.BELOW_MIN_SIZE,
        reference.BELOW_MIN_NOTIONAL,
    )
    assert core == ref


@pytest.mark.parametrize("levels", [63, 64, 65, 150])
def test_long_walks_match_the_reference(levels: int) -> None:
    # The walk remembers up to 64 chunks to trim lot rounding; longer walks take the
    # second-pass path. Equal quantities per level (0.01 BTC) make one chunk per level, and
    # a cap half a lot short of the full depth forces a trim of the last chunk.
    a = spot("a", lot="0.001")
    b = spot("b", lot="0.01")
    asks = [(10_000 + i, 10) for i in range(levels)]
    bids = [(11_000 - i, 1) for i in range(levels)]
    book_a = book([(9_000, 1)], asks)
    book_b = book(bids, [(12_000, 1)])
    max_size = Decimal(levels) / 100 - Decimal("0.005")
    calc = SpreadCalculator(a, b, "10", "10", min_edge_bps="1", max_size=max_size)
    got = calc.calc(book_a, book_b, BUY_A_SELL_B)
    want = reference_spread(
        book_a.asks(),
        book_b.bids(),
        Leg(a, Decimal("10")),
        Leg(b, Decimal("10")),
        Decimal("1"),
        max_size=max_size,
        size_decimals=calc.size_decimals,
    )
    assert got.ok
    assert got.size == Decimal(levels - 1) / 100  # trimmed to both lot grids
    assert (got.buy_levels, got.sell_levels) == (levels - 1, levels - 1)
    assert_same(got, want, calc.size_decimals, calc.notional_decimals)


# --- cross-quote pairs ------------------------------------------------------------------


def usd(venue: str = "kraken", tick: str = "0.1", lot: str = "0.0001", **kw: Any) -> Instrument:
    return Instrument(venue, "XBTUSD", "BTC", "USD", tick, lot, **kw)


def usdt(venue: str = "binance", tick: str = "0.01", lot: str = "0.00001", **kw: Any) -> Instrument:
    return Instrument(venue, "BTCUSDT", "BTC", "USDT", tick, lot, **kw)


def test_cross_quote_converts_b_in_every_marginal_edge() -> None:
    # Kraken BTC/USD (A, the pair's quote) against Binance BTC/USDT (B). USDT is worth
    # 0.9996 USD when we sell on B and costs 1.0004 USD when we buy on B.
    calc = cross_calc(usd(), usdt(), "10", "5", min_edge="5")
    calc.set_quote_rate("1.0004", "0.9996")
    book_a = book([(990_000, 1)], [(1_000_000, 3_000), (1_000_100, 10_000)])  # 100000.0 x 0.3
    book_b = book([(10_030_000, 20_000), (10_025_000, 100_000)], [(10_040_000, 1)])
    r = calc.calc(book_a, book_b, BUY_A_SELL_B)
    # Marginal edges in USD: ask 100000.0 vs bid 100300.00*0.9996: +10.96 bp; vs the next bid
    # 100250.00*0.9996: +5.97 bp; ask 100010.0 vs that bid: +4.97 bp < 5 bp, so the walk stops
    # at 0.3 BTC. Unconverted, that last pair would be +8.98 bp and the walk would go on.
    assert r.ok and r.size == Decimal("0.3")
    assert (r.buy_limit, r.sell_limit, r.buy_levels, r.sell_levels) == (1_000_000, 10_025_000, 1, 2)
    assert r.buy_notional == Decimal("30000")  # USD, Kraken's own quote
    assert r.sell_notional == Decimal("0.2") * 100_300 + Decimal("0.1") * 100_250  # USDT
    assert r.cost_ref == r.buy_notional  # buying on A: already in the pair's quote
    assert r.profit == r.sell_notional * Decimal("0.9996") * Decimal("0.9995") - Decimal(
        "30000"
    ) * Decimal("1.001")
    assert r.profit_decimals == calc.notional_decimals + 6 + RATE_DECIMALS
    assert Fraction(r.profit_scaled, 10**r.profit_decimals) == Fraction(r.profit)
    top = (100_300 * 0.9996 * 0.9995 - 100_000 * 1.001) / (100_000 * 1.001) * 1e4
    assert r.top_edge_bps == pytest.approx(top)
    assert calc.top_edges(book_a, book_b)[0] == pytest.approx(top)
    calc.set_quote_rate("1", "1")
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).size == Decimal("1.2")

    # Buying on B: its cost converts at pay (1.0004), and cost_ref is that cost in USD.
    book_a = book([(1_006_000, 5_000)], [(1_007_000, 1)])  # A bids 100600.0 x 0.5
    book_b = book([(10_020_000, 1)], [(10_030_000, 25_000)])  # B asks 100300.00 x 0.25
    calc.set_quote_rate("1.0004", "0.9996")
    r = calc.calc(book_a, book_b, BUY_B_SELL_A)
    assert r.ok and r.size == Decimal("0.25")
    assert r.buy_notional == Decimal("25075")  # USDT
    assert r.sell_notional == Decimal("25150")  # USD
    assert r.cost_ref == Decimal("25075") * Decimal("1.0004")
    assert r.profit == Decimal("25150") * Decimal("0.999") - r.cost_ref * Decimal("1.0005")
    assert r.top_edge_bps == pytest.approx(
        (100_600 * 0.999 - 100_300 * 1.0004 * 1.0005) / (100_300 * 1.0004 * 1.0005) * 1e4
    )
    # At pay 1.0010 the same books give 4.9 bp: below the 5 bp threshold.
    calc.set_quote_rate("1.001", "0.9996")
    assert calc.calc(book_a, book_b, BUY_B_SELL_A).status == NO_EDGE


def test_no_rate_until_set_and_after_clear() -> None:
    calc = cross_calc(usd(), usdt(), "0", "0")
    book_a = book([(990_000, 1)], [(1_000_000, 10_000)])
    book_b = book([(10_010_000, 10_000)], [(10_020_000, 1)])
    assert NO_RATE == 6 and calc.quote_rate is None and calc.cross_quote is True
    for direction in (BUY_A_SELL_B, BUY_B_SELL_A):
        r = calc.calc(book_a, book_b, direction)
        assert (r.status, r.status_name, r.base_qty) == (NO_RATE, "NO_RATE", 0)
        assert math.isnan(r.top_edge_bps) and r.profit == 0 and r.cost_ref == 0
    assert all(math.isnan(e) for e in calc.top_edges(book_a, book_b))
    # NO_RATE comes before looking at the books: an empty book does not hide it.
    assert calc.calc(book([], []), book_b, BUY_A_SELL_B).status == NO_RATE
    calc.set_quote_rate("1", "1")
    assert calc.quote_rate == (Decimal(1), Decimal(1))
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).ok
    assert calc.calc(book([], []), book_b, BUY_A_SELL_B).status == EMPTY_BOOK
    calc.clear_quote_rate()
    assert calc.quote_rate is None
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).status == NO_RATE
    assert math.isnan(calc.top_edges(book_a, book_b)[0])


def test_rates_round_against_us_at_the_threshold() -> None:
    calc = cross_calc(usd(), usdt(), "0", "0", min_edge="10")
    # Selling on B: buy 1 BTC at 100.0 USD, sell at 100.00 USDT; the edge is get - 1.
    book_a = book([(900, 1)], [(1_000, 10_000)])
    book_b = book([(10_000, 100_000)], [(11_000, 1)])
    calc.set_quote_rate("1.002", "1.001")  # exactly 10 bp: the threshold is inclusive
    r = calc.calc(book_a, book_b, BUY_A_SELL_B)
    assert r.ok and r.size == 1 and r.profit == Decimal("0.1")
    calc.min_edge_bps = "10.01"  # a threshold change recomputes the converted coefficients
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).status == NO_EDGE
    calc.min_edge_bps = "10"
    # 16 decimals: get is held rounded DOWN to 15, 1.000999999999999, just below 10 bp.
    calc.set_quote_rate("1.002", "1.0009999999999999")
    assert calc.quote_rate == (Decimal("1.002"), Decimal("1.000999999999999"))
    assert calc.calc(book_a, book_b, BUY_A_SELL_B).status == NO_EDGE
    # And a get a hair above 1.001 is held as 1.001 exactly: the profit shows it.
    calc.set_quote_rate("1.002", "1.0010000000000009")
    r = calc.calc(book_a, book_b, BUY_A_SELL_B)
    assert r.ok and r.profit == Decimal("0.1")

    # Buying on B: buy at 100.00 USDT, sell at 100.1 USD; the edge is 100.1 / (100 * pay) - 1.
    book_a = book([(1_001, 10_000)], [(1_100, 1)])
    book_b = book([(9_000, 1)], [(10_000, 100_000)])
    calc.set_quote_rate("1", "0.99")  # exactly 10 bp
    r = calc.calc(book_a, book_b, BUY_B_SELL_A)
    assert r.ok and r.profit == Decimal("0.1") and r.cost_ref == Decimal("100")
    # pay is held rounded UP: 1.0000000000000001 becomes 1.000000000000001 (to nearest it
    # would be 1 and pass), and the edge falls below the threshold.
    calc.set_quote_rate("1.0000000000000001", "0.99")
    assert calc.quote_rate == (Decimal("1.000000000000001"), Decimal("0.99"))
    assert calc.calc(book_a, book_b, BUY_B_SELL_A).status == NO_EDGE


@pytest.mark.parametrize(
    ("pay", "get", "message"),
    [
        (1.0, "1", r"^quote rate pay 1\.0 is a float"),
        ("1", 0.5, r"^quote rate get 0\.5 is a float"),
        ("abc", "1", r"^quote rate pay 'abc' is not a decimal number$"),
        (None, "1", r"^quote rate pay None is not a decimal number$"),
        ("NaN", "1", r"^quote rate pay 'NaN' is not a finite number$"),
        ("1", "-Infinity", r"^quote rate get '-Infinity' is not a finite number$"),
        ("0", "0", r"^quote rate pay 0 must be > 0$"),
        ("1", "-1", r"^quote rate get -1 must be > 0$"),
        ("1000000.1", "1", r"^quote rate pay 1000000\.1 is outside \[0\.000001, 1000000\]$"),
        ("1", "0.00000099", r"^quote rate get 0\.00000099 is outside \[0\.000001, 1000000\]$"),
        ("1", "1.01", r"^quote rate get 1\.01 is above pay 1: need 0 < get <= pay$"),
    ],
)
def test_bad_quote_rates_are_refused(pay: Any, get: Any, message: str) -> None:
    calc = cross_calc(usd(), usdt(), "0", "0")
    book_a = book([(990_000, 1)], [(1_000_000, 10_000)])
    book_b = book([(10_010_000, 10_000)], [(10_020_000, 1)])
    calc.set_quote_rate("1.0001", "0.9999")
    before = calc.calc(book_a, book_b, BUY_A_SELL_B)
    with pytest.raises(SpreadError, match=message):
        calc.set_quote_rate(pay, get)
    # A refused rate changes nothing.
    assert calc.quote_rate == (Decimal("1.0001"), Decimal("0.9999"))
    after = calc.calc(book_a, book_b, BUY_A_SELL_B)
    assert (after.status, after.base_qty, after.profit) == (
        before.status,
        before.base_qty,
        before.profit,
    )


def test_rate_range_ends_are_accepted_and_exact() -> None:
    calc = cross_calc(usd(), usdt(), "0", "0")
    calc.set_quote_rate("1000000", Decimal("0.000001"))
    assert calc.quote_rate == (Decimal(1_000_000), Decimal("0.000001"))
    calc.set_quote_rate(1, 1)  # ints are exact too
    assert calc.quote_rate == (Decimal(1), Decimal(1))


@pytest.mark.parametrize("flag", ["yes", 1, None, 0.0])
def test_cross_quote_flag_must_be_a_bool(flag: Any) -> None:
    ctor = SpreadCalculator
    with pytest.raises(SpreadError, match=r"^cross_quote must be True or False, got "):
        ctor(usd(), usdt(), "0", "0", cross_quote=flag)


def test_rate_calls_need_a_cross_quote_calculator() -> None:
    plain = SpreadCalculator(spot("a"), spot("b"), "0", "0")
    assert plain.cross_quote is False and plain.quote_rate is None
    with pytest.raises(SpreadError, match=r"a:BTCUSDT/b:BTCUSDT was built without cross_quote"):
        plain.set_quote_rate("1", "1")
    with pytest.raises(SpreadError, match="without cross_quote=True: it has no quote rate"):
        plain.clear_quote_rate()
    # Without the flag differing quotes are still refused, exactly as before.
    with pytest.raises(SpreadError, match="mismatched quotes: kraken:XBTUSD is in USD"):
        SpreadCalculator(usd(), usdt(), "0", "0")
    ctor = SpreadCalculator
    with pytest.raises(SpreadError, match="mismatched quotes"):
        ctor(usd(), usdt(), "0", "0", cross_quote=False)
    # The flag relaxes only the quote: other mismatches are still refused.
    with pytest.raises(SpreadError, match="mismatched assets"):
        cross_calc(usd(), Instrument("b", "ETHUSDT", "ETH", "USDT", "0.01", "0.001"), "0", "0")


def test_quote_balances_stay_in_each_venues_own_quote() -> None:
    # B quoted in EUR, 1.1 USD per EUR both ways. Balances are what each account holds.
    eur = Instrument("bitstamp", "BTCEUR", "BTC", "EUR", "0.01", "0.00001")
    calc = cross_calc(usd(), eur, "0", "100")  # 1% taker fee on B
    calc.set_quote_rate("1.1", "1.1")
    # Buying on B at 100.00 EUR (110 USD), selling on A at 120.0 USD.
    book_a = book([(1_200, 100_000)], [(1_300, 1)])
    book_b = book([(9_000, 1)], [(10_000, 10**6)])
    calc.set_balances(quote_b="50.5")  # EUR: 0.5 BTC at 100 * 1.01
    r = calc.calc(book_a, book_b, BUY_B_SELL_A)
    # Converted either way the budget would buy 0.455 or 0.55 BTC instead.
    assert r.ok and r.size == Decimal("0.5")
    assert r.buy_notional == Decimal("50") and r.cost_ref == Decimal("55")
    assert r.profit == Decimal("60") - Decimal("55") * Decimal("1.01")
    # Buying on A at 100.0 USD, selling on B at 100.00 EUR (110 USD, 108.9 net).
    book_a = book([(900, 1)], [(1_000, 100_000)])
    book_b = book([(10_000, 10**6)], [(11_000, 1)])
    calc.set_balances(quote_a="30.03", quote_b="1")  # USD; B's budget is not used this way
    r = calc.calc(book_a, book_b, BUY_A_SELL_B)
    assert r.ok and r.size == Decimal("0.3003")
    assert r.cost_ref == r.buy_notional == Decimal("30.03")
    assert r.sell_notional == Decimal("30.03")  # EUR
    # Minimum notionals are venue rules in the venue's own quote too: 30.03 EUR < 30.04.
    strict = cross_calc(
        usd(),
        Instrument("bitstamp", "BTCEUR", "BTC", "EUR", "0.01", "0.00001", min_notional="30.04"),
        "0",
        "100",
    )
    strict.set_quote_rate("1.1", "1.1")
    strict.set_balances(quote_a="30.03")
    assert strict.calc(book_a, book_b, BUY_A_SELL_B).status == BELOW_MIN_NOTIONAL


def test_calc_into_reuses_the_result_across_modes() -> None:
    plain = SpreadCalculator(usdt("a"), usdt("b"), "10", "10")
    cross = cross_calc(usdt("a"), usd("b"), "10", "10")
    book_a = book([(9_000_000, 1)], [(10_000_000, 50_000)])  # 100000.00 USDT x 0.5
    book_b = book([(1_010_000, 1_000)], [(1_020_000, 1)])  # 101000.0 USD x 0.1
    out: Any = SpreadResult()
    cross.calc_into(book_a, book_b, BUY_A_SELL_B, out)
    assert out.status == NO_RATE and out.rate_decimals == RATE_DECIMALS
    cross.set_quote_rate("1.0002", "0.9998")  # USDT per USD
    cross.calc_into(book_a, book_b, BUY_A_SELL_B, out)
    fresh: Any = cross.calc(book_a, book_b, BUY_A_SELL_B)
    assert out.ok and out.size == Decimal("0.1")
    for name in ("status", "base_qty", "buy_limit", "sell_limit", "profit", "profit_scaled"):
        assert getattr(out, name) == getattr(fresh, name), name
    assert out.profit == Decimal("10100") * Decimal("0.9998") * Decimal("0.999") - Decimal(
        "10000"
    ) * Decimal("1.001")
    assert out.cost_ref == Decimal("10000")
    # The same object, filled by a same-quote calculator: no cross-quote state left over.
    book_c = book([(10_100_000, 10_000)], [(10_200_000, 1)])
    plain.calc_into(book_a, book_c, BUY_A_SELL_B, out)
    want = plain.calc(book_a, book_c, BUY_A_SELL_B)
    assert out.ok and out.rate_decimals == 0 and out.profit_scaled == want.profit_scaled
    assert out.profit == want.profit and out.cost_ref == out.buy_notional == Decimal("10000")
    # ... and then by the cross-quote one again, after its rate was cleared.
    cross.clear_quote_rate()
    cross.calc_into(book_a, book_b, BUY_A_SELL_B, out)
    assert out.status == NO_RATE and out.base_qty == 0 and out.profit == 0 and out.cost_ref == 0


SAME_FIELDS = (
    "status",
    "base_qty",
    "buy_size",
    "sell_size",
    "buy_limit",
    "sell_limit",
    "buy_levels",
    "sell_levels",
    "cost_quanta",
    "proceeds_quanta",
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cross_quote_at_rate_one_equals_the_plain_calculator(data: st.DataObject) -> None:
    a = data.draw(instruments("a"))
    b = data.draw(instruments("b"))
    fee_a = Decimal(data.draw(st.integers(0, 1_000))) / 100
    fee_b = Decimal(data.draw(st.integers(0, 1_000))) / 100
    min_edge = Decimal(data.draw(st.integers(-500, 2_000))) / 100
    max_size = data.draw(amounts)
    try:
        plain = SpreadCalculator(a, b, fee_a, fee_b, min_edge, max_size)
    except SpreadError:
        return
    cross = cross_calc(a, b, fee_a, fee_b, min_edge, max_size)
    one: tuple[Any, Any] = data.draw(
        st.sampled_from([(1, 1), ("1", "1.0"), (Decimal("1.000"), "1")])
    )
    cross.set_quote_rate(*one)
    mid = Fraction(data.draw(st.integers(50, 5_000)))
    mid_b = mid * (1 + Fraction(data.draw(st.integers(-100, 400)), 10_000))
    books = [
        book(data.draw(side_levels(i, m, ask=False)), data.draw(side_levels(i, m, True)))
        for i, m in ((a, mid), (b, mid_b))
    ]
    balances = {k: data.draw(amounts) for k in ("quote_a", "base_a", "quote_b", "base_b")}
    plain.set_balances(**balances)
    cross.set_balances(**balances)
    top_p, top_c = plain.top_edges(*books), cross.top_edges(*books)
    assert [math.isnan(x) for x in top_p] == [math.isnan(x) for x in top_c]
    assert [x for x in top_p if not math.isnan(x)] == [x for x in top_c if not math.isnan(x)]
    for direction in (BUY_A_SELL_B, BUY_B_SELL_A):
        p: Any = plain.calc(books[0], books[1], direction)
        c = cross.calc(books[0], books[1], direction)
        event(p.status_name)
        assert [getattr(c, f) for f in SAME_FIELDS] == [getattr(p, f) for f in SAME_FIELDS]
        assert math.isnan(p.top_edge_bps) == math.isnan(c.top_edge_bps)
        if not math.isnan(p.top_edge_bps):
            assert c.top_edge_bps == p.top_edge_bps  # bit for bit
        assert c.profit == p.profit and c.cost_ref == p.cost_ref == p.buy_notional
        assert Fraction(c.profit_scaled, 10**c.profit_decimals) == Fraction(
            p.profit_scaled, 10**p.profit_decimals
        )


@pytest.mark.parametrize(
    ("a", "b", "pay", "get"),
    [
        # ETH in BTC (A) against ETH in USDT (B): 1 USDT ~ 1e-5 BTC, held to 15 decimals.
        (
            Instrument("a", "ETHBTC", "ETH", "BTC", "0.00001", "0.001"),
            Instrument("b", "ETHUSDT", "ETH", "USDT", "0.01", "0.0001"),
            "0.00001000030000123",
            "0.00000999969999876",
        ),
        # The other way round: 1 BTC ~ 1e5 USDT.
        (
            Instrument("a", "ETHUSDT", "ETH", "USDT", "0.01", "0.0001"),
            Instrument("b", "ETHBTC", "ETH", "BTC", "0.00001", "0.001"),
            "100003.000012345678901234",
            "99996.999987654321098765",
        ),
        # The ends of the accepted range.
        (
            Instrument("a", "X1", "X", "USD", "0.000001", "1"),
            Instrument("b", "X2", "X", "M", "0.000001", "1"),
            "1000000",
            "999999.999999999999999",
        ),
        (
            Instrument("a", "X1", "X", "USD", "0.01", "1"),
            Instrument("b", "X2", "X", "U", "1", "1"),
            "0.000001000000000001",
            "0.000001",
        ),
    ],
)
def test_extreme_rates_match_the_reference(
    a: Instrument, b: Instrument, pay: str, get: str
) -> None:
    calc = cross_calc(a, b, "10", "20", min_edge="3")
    calc.set_quote_rate(pay, get)
    assert calc.quote_rate is not None
    held = (Fraction(calc.quote_rate[0]), Fraction(calc.quote_rate[1]))
    a_tick, b_tick = Fraction(Decimal(a.price.step)), Fraction(Decimal(b.price.step))
    mid_a = 3_000 * Fraction(Decimal(get)) if a.quote == "BTC" else Fraction(3_000)
    for direction in (BUY_A_SELL_B, BUY_B_SELL_A):
        # Deep books around mid (A's quote), B's converted at the rate, with B 0.5% rich on
        # the side being sold so both directions walk several levels.
        rich = Fraction(1005, 1000) if direction == BUY_A_SELL_B else Fraction(995, 1000)
        mid_b = mid_a / held[1] * rich
        ka, kb = int(mid_a / a_tick), int(mid_b / b_tick)
        step_a, step_b = max(1, ka // 2000), max(1, kb // 2000)
        book_a = book(
            [(ka - step_a * (i + 1), 7 + i) for i in range(20)],
            [(ka + step_a * (i + 1), 5 + i) for i in range(20)],
        )
        book_b = book(
            [(kb - step_b * (i + 1), 6 + i) for i in range(20)],
            [(kb + step_b * (i + 1), 8 + i) for i in range(20)],
        )
        got = calc.calc(book_a, book_b, direction)
        bi = 0 if direction == BUY_A_SELL_B else 1
        books, legs = (book_a, book_b), (Leg(a, Decimal(10)), Leg(b, Decimal(20)))
        want, cost_ref = reference_cross(
            books[bi].asks(),
            books[1 - bi].bids(),
            legs[bi],
            legs[1 - bi],
            buy_rate=held[0] if bi == 1 else Fraction(1),
            sell_rate=held[1] if bi == 0 else Fraction(1),
            min_edge_bps=Decimal(3),
            size_decimals=calc.size_decimals,
        )
        assert got.ok and got.buy_levels + got.sell_levels > 2, got  # a real walk
        assert_same(got, want, calc.size_decimals, calc.notional_decimals, cost_ref, cross=True)


def test_prices_beyond_the_exact_range_raise() -> None:
    # A rate with all 21 digits at the top of the range leaves the least room for prices:
    # B's bids must stay below ~1.7e17 ticks for the int128 test to be exact.
    a = Instrument("a", "X1", "X", "USD", "0.01", "1")
    b = Instrument("b", "X2", "X", "M", "0.01", "1")
    calc = cross_calc(a, b, "0", "0")
    calc.set_quote_rate("999999.999999999999999", "999999.999999999999999")
    book_a = book([(1, 1)], [(10**6, 1)])
    calc.calc(book_a, book([(10**17, 1)], [(10**17 + 1, 1)]), BUY_A_SELL_B)  # in range
    far = book([(10**18, 1)], [(10**18 + 1, 1)])
    with pytest.raises(SpreadError, match=r"^b:X2: bid of 1000000000000000000 ticks is beyond"):
        calc.calc(book_a, far, BUY_A_SELL_B)
    assert math.isnan(calc.top_edges(book_a, far)[0])
    # Asks rise deeper in the book, so the walk checks each one it reaches: buying on B
    # 1 unit at 10000.00 M (~1e10 USD) passes, the next ask is beyond the range.
    deep = book([(1, 1)], [(10**6, 1), (10**18, 1)])
    rich = book([(2 * 10**12, 5)], [(3 * 10**12, 1)])
    with pytest.raises(SpreadError, match=r"^b:X2: ask of 1000000000000000000 ticks is beyond"):
        calc.calc(rich, deep, BUY_B_SELL_A)
    # Without that level the same walk is fine.
    assert calc.calc(rich, book([(1, 1)], [(10**6, 1)]), BUY_B_SELL_A).ok
