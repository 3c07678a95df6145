"""The spread calculator against hand-worked cases and a brute-force reference."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

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


def spot(venue: str, tick: str = "0.01", lot: str = "0.001", **kw: str) -> Instrument:
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
def instruments(draw: st.DrawFn, venue: str) -> Instrument:
    lot = draw(st.sampled_from(LOTS))
    lot_dec = Decimal(lot)
    # Sometimes the book's size step is finer than the order lot (as on Binance spot).
    finer = draw(st.sampled_from([1, 1, 1, 10, 100]))
    return Instrument(
        venue,
        "X",
        "BTC",
        "USDT",
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


def check_against_reference(
    data: st.DataObject, dislocation_bps: tuple[int, int], max_fee_bps: int
) -> None:
    a = data.draw(instruments("a"))
    b = data.draw(instruments("b"))
    fee_a = Decimal(data.draw(st.integers(0, max_fee_bps))) / 100
    fee_b = Decimal(data.draw(st.integers(0, max_fee_bps))) / 100
    min_edge = Decimal(data.draw(st.integers(-5_000, 5_000))) / 100
    if dislocation_bps[0] > 0:
        min_edge = Decimal(data.draw(st.integers(-2_000, 2_000))) / 100
    max_size = data.draw(amounts)
    try:
        calc = SpreadCalculator(a, b, fee_a, fee_b, min_edge, max_size)
    except SpreadError:
        event("refused")
        return  # grids too far apart for one common scale: refused, nothing to compare
    mid = Fraction(data.draw(st.integers(50, 5_000)))
    mid_b = mid * (1 + Fraction(data.draw(st.integers(*dislocation_bps)), 10_000))
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
        want = reference_spread(
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
        event(got.status_name)
        assert_same(got, want, calc.size_decimals, calc.notional_decimals)


def assert_same(got: SpreadResult, want: RefResult, size_dec: int, notional_dec: int) -> None:
    assert got.status_name == _name(want.status), (got, want)
    if want.status != OK:
        assert got.base_qty == 0
        return
    assert Fraction(got.base_qty, 10**size_dec) == want.size
    assert (got.buy_size, got.sell_size) == (want.buy_size, want.sell_size)
    assert (got.buy_limit, got.sell_limit) == (want.buy_limit, want.sell_limit)
    assert (got.buy_levels, got.sell_levels) == (want.buy_levels, want.sell_levels)
    assert Fraction(got.cost_quanta, 10**notional_dec) == want.cost
    assert Fraction(got.proceeds_quanta, 10**notional_dec) == want.proceeds
    assert Fraction(got.profit_scaled, 10 ** (notional_dec + 6)) == want.profit
    assert got.profit == Decimal(want.profit.numerator) / Decimal(want.profit.denominator)


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
