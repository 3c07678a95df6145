"""Exact decimal text <-> int64 grid units (``arbengine._core.fixed.Grid``).

The oracle is Python's ``Decimal`` at a precision far beyond any input, so it is exact.

Representable range, as these tests pin it: a grid value is representable when its count of
the grid's finest decimal (units * mantissa, i.e. value * 10**decimals) fits in int64. That
is the limit ``format`` enforces ("N units of STEP overflow int64"), and ``parse`` must use
the same one so that the two are exact inverses: every text ``parse`` accepts, ``format``
writes back. For the common mantissa-1 grids ("0.01", "0.00000001") this is simply
"units fit in int64".
"""

from __future__ import annotations

import pickle
import re
from decimal import Context, Decimal, localcontext
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from arbengine._core.errors import CoreError, FixedPointError
from arbengine._core.fixed import Grid, format_text
from tests.reference.book import INT64_MAX, INT64_MIN

NAME = "binance:BTCUSDT price"
PLAIN = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
# Far more digits than any value or test string here: Decimal arithmetic stays exact.
EXACT = Context(prec=2_000)


def normalise(mantissa: int, decimals: int) -> tuple[int, int]:
    """The canonical (mantissa, decimals) of a step: no trailing zeros after the point."""
    while decimals and mantissa % 10 == 0:
        mantissa //= 10
        decimals -= 1
    return mantissa, decimals


def step_text(mantissa: int, decimals: int) -> str:
    """Venue-style text of mantissa * 10**-decimals, keeping any trailing zeros."""
    return f"{Decimal(mantissa).scaleb(-decimals):f}"


def oracle_parse(grid: Grid, text: str) -> int | None:
    """Exact units of ``text`` on ``grid``, or None when it must be rejected."""
    if not PLAIN.fullmatch(text):
        return None  # signs, exponents, blanks, non-ASCII digits...: not venue decimal text
    with localcontext(EXACT):
        scaled = Decimal(text).scaleb(grid.decimals)  # value in units of 10**-decimals
        if scaled != scaled.to_integral_value():
            return None  # finer than the grid's decimals
        raw = int(scaled)
    if raw % grid.mantissa or raw > INT64_MAX:
        return None  # between two steps, or not representable
    return raw // grid.mantissa


def oracle_format(grid: Grid, units: int, trim: bool = False) -> str | None:
    """Exact text of ``units`` on ``grid``, or None when it is not representable."""
    if not INT64_MIN <= units * grid.mantissa <= INT64_MAX:
        return None
    with localcontext(EXACT):
        text = f"{Decimal(units) * Decimal(grid.step):.{grid.decimals}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# --- grid construction -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "mantissa", "decimals", "canonical"),
    [
        ("0.01", 1, 2, "0.01"),
        ("0.5", 5, 1, "0.5"),
        ("10", 10, 0, "10"),
        ("0.00000001", 1, 8, "0.00000001"),
        ("0.010", 1, 2, "0.01"),  # venues pad steps with zeros
        ("0.00100000", 1, 3, "0.001"),
        ("10.0", 10, 0, "10"),
        ("1", 1, 0, "1"),
        ("0.25", 25, 2, "0.25"),
        ("0.000000000000000001", 1, 18, "0.000000000000000001"),
        ("0.0000000000000000010", 1, 18, "0.000000000000000001"),  # 19 places, 18 significant
    ],
)
def test_grid_steps(step: str, mantissa: int, decimals: int, canonical: str) -> None:
    grid = Grid(step, name=NAME)
    assert (grid.mantissa, grid.decimals, grid.step, grid.name) == (
        mantissa,
        decimals,
        canonical,
        NAME,
    )
    assert grid == Grid(canonical)
    assert hash(grid) == hash(Grid(canonical))


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ("0", "is zero"),
        ("0.0", "is zero"),
        ("0.000", "is zero"),
        ("0.0000000000000000001", "has more than 18 decimals"),
        ("0.0000000000000000005", "has more than 18 decimals"),
        ("", "is not plain decimal text"),
        ("abc", "is not plain decimal text"),
        (".01", "is not plain decimal text"),
        ("-0.01", "is negative"),
        ("1e-2", "is in exponent form"),
        ("99999999999999999999", "overflows int64"),
    ],
)
def test_bad_grid_steps_rejected(step: str, reason: str) -> None:
    with pytest.raises(FixedPointError, match=re.escape(f"grid step {step!r} {reason}")):
        Grid(step)


def test_grid_repr_equality_and_pickle() -> None:
    grid = Grid("0.010", name=NAME)
    assert repr(grid) == f"Grid('0.01', name={NAME!r})"
    assert grid == Grid("0.01")
    assert grid != Grid("0.1")
    assert grid == Grid("0.01", name="other")  # equality is the step; the name is a label
    assert grid.__eq__(object()) is NotImplemented
    clone = pickle.loads(pickle.dumps(grid))
    assert (clone.step, clone.name, clone.mantissa, clone.decimals) == ("0.01", NAME, 1, 2)


def test_fixed_point_error_is_a_core_error() -> None:
    assert issubclass(FixedPointError, CoreError)
    assert issubclass(FixedPointError, ValueError)


# --- parse: examples -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "text", "units"),
    [
        ("0.01", "61737.63000000", 6173763),  # venue text with zeros beyond the grid
        ("0.01", "61737.63", 6173763),
        ("0.01", "61737.6", 6173760),
        ("0.01", "61737", 6173700),
        ("0.01", "0", 0),
        ("0.01", "0.00", 0),
        ("0.01", "000123.45", 12345),
        ("0.01", "1.23" + "0" * 60, 123),
        ("0.01", "0" * 40 + "1", 100),  # leading zeros do not overflow
        ("0.01", "92233720368547758.07", INT64_MAX),
        ("0.00000001", "0.00000001", 1),
        ("0.00000001", "21000000", 2_100_000_000_000_000),
        ("0.00000001", "92233720368.54775807", INT64_MAX),
        ("0.5", "1.5", 3),
        ("0.5", "1.0", 2),
        ("0.5", "0.50", 1),
        ("10", "120", 12),
        ("10", "120.000", 12),
        ("0.000000000000000001", "9.223372036854775807", INT64_MAX),
    ],
)
def test_parse_examples(step: str, text: str, units: int) -> None:
    grid = Grid(step, name=NAME)
    assert grid.parse(text) == units
    assert grid.parse(text.encode("ascii")) == units  # bytes straight from a frame


@pytest.mark.parametrize(
    ("step", "text", "reason"),
    [
        ("0.01", "61737.635", "is off the 0.01 grid"),
        ("0.01", "0.001", "is off the 0.01 grid"),
        ("0.01", "1." + "0" * 30 + "1", "is off the 0.01 grid"),
        ("0.5", "1.25", "is off the 0.5 grid"),
        ("0.5", "0.1", "is off the 0.5 grid"),
        ("10", "125", "is off the 10 grid"),
        ("10", "1.0", "is off the 10 grid"),
        ("0.01", "", "is not plain decimal text"),
        ("0.01", ".5", "is not plain decimal text"),
        ("0.01", "5.", "is not plain decimal text"),
        ("0.01", "abc", "is not plain decimal text"),
        ("0.01", " 1", "is not plain decimal text"),
        ("0.01", "1 ", "is not plain decimal text"),
        ("0.01", "+1", "is not plain decimal text"),
        ("0.01", "1..2", "is not plain decimal text"),
        ("0.01", "--1", "is not plain decimal text"),
        ("0.01", "-", "is not plain decimal text"),
        ("0.01", "1,5", "is not plain decimal text"),
        ("0.01", "1_000", "is not plain decimal text"),
        ("0.01", "0x10", "is not plain decimal text"),
        ("0.01", "nan", "is not plain decimal text"),
        ("0.01", "inf", "is not plain decimal text"),
        ("0.01", "١٢", "is not plain decimal text"),  # non-ASCII digits Decimal would take
        ("0.01", "1\x002", "is not plain decimal text"),
        ("0.01", "-1", "is negative"),
        ("0.01", "-0.01", "is negative"),
        ("0.01", "1e5", "is in exponent form"),
        ("0.01", "1E-3", "is in exponent form"),
        ("0.01", "1.5e2", "is in exponent form"),
        ("0.01", "92233720368547758.08", "overflows int64"),
        ("0.01", "184467440737095516.16", "overflows int64"),
        ("0.01", "1" + "0" * 30, "overflows int64"),
        ("0.00000001", "92233720368.54775808", "overflows int64"),
    ],
)
def test_parse_errors_name_value_and_grid(step: str, text: str, reason: str) -> None:
    grid = Grid(step, name=NAME)
    with pytest.raises(FixedPointError, match=re.escape(f"{NAME}: value {text!r} {reason}")):
        grid.parse(text)


def test_parse_error_without_name() -> None:
    with pytest.raises(FixedPointError, match=r"^value 'x' is not plain decimal text$"):
        Grid("0.01").parse("x")


def test_parse_bytes() -> None:
    grid = Grid("0.01", name=NAME)
    assert grid.parse(b"61737.63000000") == 6173763
    with pytest.raises(FixedPointError, match=re.escape(f"{NAME}: value '1.2.3' is not")):
        grid.parse(b"1.2.3")
    replaced = "1\ufffd"  # the undecodable byte shows as U+FFFD in the message
    with pytest.raises(FixedPointError, match=re.escape(f"{NAME}: value {replaced!r} is not")):
        grid.parse(b"1\xff")  # not UTF-8: still a FixedPointError with a readable value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (61737.63, "float 61737.63 is not exact; pass the venue's decimal text"),
        (6173763, "expected decimal text (str or bytes), got int"),
        (None, "expected decimal text (str or bytes), got NoneType"),
        (bytearray(b"1"), "expected decimal text (str or bytes), got bytearray"),
        (Decimal("1.5"), "expected decimal text (str or bytes), got Decimal"),
    ],
)
def test_parse_rejects_non_text(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        Grid("0.01").parse(value)


def test_parse_lone_surrogate_is_a_fixed_point_error() -> None:
    # A str that is not encodable as UTF-8 (e.g. from json.loads('"\\ud800"')) is junk text
    # like any other: callers catch FixedPointError, not UnicodeEncodeError.
    with pytest.raises(FixedPointError, match=re.escape(NAME)):
        Grid("0.01", name=NAME).parse("1\ud800")


def test_parse_accepts_only_what_format_can_write() -> None:
    # 1e18 on a 0.5 grid is 2e18 units, but 1e19 tenths: past int64, so format refuses it.
    # parse must refuse it too, or a value enters the system that can never be written out.
    grid = Grid("0.5", name=NAME)
    with pytest.raises(FixedPointError, match=re.escape("overflow int64")):
        grid.format(2 * 10**18)
    with pytest.raises(FixedPointError, match=re.escape(f"{NAME}: value '1000000000000000000'")):
        grid.parse("1000000000000000000")


# --- format: examples ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "units", "text", "trimmed"),
    [
        ("0.01", 6173763, "61737.63", "61737.63"),
        ("0.01", 6173760, "61737.60", "61737.6"),
        ("0.01", 6173700, "61737.00", "61737"),
        ("0.01", 5, "0.05", "0.05"),
        ("0.01", 0, "0.00", "0"),
        ("0.01", INT64_MAX, "92233720368547758.07", "92233720368547758.07"),
        ("0.01", -5, "-0.05", "-0.05"),
        ("0.01", -100, "-1.00", "-1"),
        ("0.01", -6173763, "-61737.63", "-61737.63"),
        ("0.01", INT64_MIN, "-92233720368547758.08", "-92233720368547758.08"),
        ("0.5", 3, "1.5", "1.5"),
        ("0.5", 2, "1.0", "1"),
        ("0.5", -1, "-0.5", "-0.5"),
        ("10", 12, "120", "120"),
        ("10", 0, "0", "0"),
        ("10", -12, "-120", "-120"),
        ("0.00000001", 1, "0.00000001", "0.00000001"),
        ("0.00000001", 2_100_000_000_000_000, "21000000.00000000", "21000000"),
        ("0.000000000000000001", 1, "0.000000000000000001", "0.000000000000000001"),
        ("0.000000000000000001", INT64_MAX, "9.223372036854775807", "9.223372036854775807"),
        ("0.000000000000000001", INT64_MIN, "-9.223372036854775808", "-9.223372036854775808"),
    ],
)
def test_format_examples(step: str, units: int, text: str, trimmed: str) -> None:
    grid = Grid(step)
    assert grid.format(units) == text
    assert grid.format(units, trim=True) == trimmed
    assert grid.format(units, trim=False) == text
    assert format_text(units, grid.decimals, grid.mantissa) == text
    assert format_text(units, grid.decimals, grid.mantissa, trim=True) == trimmed


@pytest.mark.parametrize(
    ("step", "units"),
    [("0.5", 2**62), ("0.5", -(2**62)), ("10", INT64_MAX // 10 + 1), ("10", INT64_MIN)],
)
def test_format_overflow(step: str, units: int) -> None:
    grid = Grid(step, name=NAME)
    with pytest.raises(
        FixedPointError, match=re.escape(f"{NAME}: {units} units of {step} overflow int64")
    ):
        grid.format(units)


def test_format_edge_of_range() -> None:
    assert Grid("10").format(INT64_MAX // 10) == "9223372036854775800"
    assert Grid("2").format(INT64_MIN // 2) == "-9223372036854775808"
    with pytest.raises(FixedPointError):
        Grid("2").format(INT64_MIN // 2 - 1)


@pytest.mark.parametrize(
    ("units", "error", "message"),
    [
        (1.5, TypeError, "units must be an int, got float 1.5"),
        ("1", TypeError, "units must be an int, got str '1'"),
        (2**63, OverflowError, "units 9223372036854775808 does not fit in int64"),
        (-(2**63) - 1, OverflowError, "units -9223372036854775809 does not fit in int64"),
    ],
)
def test_format_rejects_bad_units(units: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        Grid("0.01").format(units)


def test_format_text_rejects_bad_scale() -> None:
    for decimals, mantissa in ((-1, 1), (19, 1), (2, 0), (2, -5)):
        with pytest.raises(FixedPointError, match="bad scale"):
            format_text(1, decimals, mantissa)


# --- properties ----------------------------------------------------------------------------

grid_params = st.tuples(st.integers(1, 1_000), st.integers(0, 18))


@settings(max_examples=300, deadline=None)
@given(grid_params)
def test_grid_step_is_exact(params: tuple[int, int]) -> None:
    mantissa, decimals = params
    text = step_text(mantissa, decimals)
    grid = Grid(text)
    assert (grid.mantissa, grid.decimals) == normalise(mantissa, decimals)
    assert Decimal(grid.step) == Decimal(text)
    assert grid.step == step_text(grid.mantissa, grid.decimals)


@st.composite
def grid_and_units(draw: st.DrawFn) -> tuple[Grid, int]:
    """A grid and a unit count, biased towards the ends of the representable range."""
    grid = Grid(step_text(*draw(grid_params)))
    limit = INT64_MAX // grid.mantissa
    units = draw(
        st.one_of(
            st.integers(-limit, limit),
            st.integers(0, 10**6),
            st.integers(limit - 3, limit + 3),
            st.integers(-limit - 3, -limit + 3),
            st.integers(INT64_MIN, INT64_MAX),
            st.sampled_from([0, 1, INT64_MAX, INT64_MIN]),
        )
    )
    return grid, max(INT64_MIN, min(INT64_MAX, units))  # format's argument is an int64


@settings(max_examples=300, deadline=None)
@given(grid_and_units())
def test_format_agrees_with_decimal(case: tuple[Grid, int]) -> None:
    grid, units = case
    for trim in (False, True):
        expected = oracle_format(grid, units, trim)
        if expected is None:
            with pytest.raises(FixedPointError, match="overflow int64"):
                grid.format(units, trim)
        else:
            assert grid.format(units, trim) == expected


@settings(max_examples=300, deadline=None)
@given(grid_and_units())
def test_round_trip(case: tuple[Grid, int]) -> None:
    grid, units = case
    units = abs(units) if units != INT64_MIN else 0  # parse takes no negatives
    # Unrepresentable counts are test_format_agrees_with_decimal's business (refusal).
    assume(units * grid.mantissa <= INT64_MAX)
    text = grid.format(units)
    assert grid.parse(text) == units
    assert grid.parse(grid.format(units, trim=True)) == units
    assert grid.parse(text.encode()) == units
    if units:
        with pytest.raises(FixedPointError, match="is negative"):
            grid.parse("-" + text)


@st.composite
def grid_and_text(draw: st.DrawFn) -> tuple[str, str]:
    """A grid step and decimal text built from an exact Decimal, on or off the grid."""
    mantissa, decimals = normalise(*draw(grid_params))
    step = Decimal(step_text(mantissa, decimals))
    int64_steps = INT64_MAX // mantissa  # last multiple whose raw count fits int64
    kind = draw(st.sampled_from(["on", "edge", "off-decimals", "off-mantissa", "any"]))
    with localcontext(EXACT):
        if kind == "on":
            value = draw(st.integers(0, int64_steps)) * step
        elif kind == "edge":
            # Around the representable limit, the uint64 limit and the int64-units limit.
            anchor = draw(st.sampled_from([int64_steps, 2**64 // mantissa, INT64_MAX]))
            value = max(0, anchor + draw(st.integers(-3, 3))) * step
        elif kind == "off-decimals":
            extra = draw(st.integers(1, 5))
            value = draw(st.integers(0, int64_steps)) * step + Decimal(
                draw(st.integers(1, 10**extra - 1))
            ).scaleb(-decimals - extra)
        elif kind == "off-mantissa" and mantissa > 1:
            raw = draw(st.integers(0, INT64_MAX // mantissa)) * mantissa
            value = Decimal(raw + draw(st.integers(1, mantissa - 1))).scaleb(-decimals)
        else:
            value = Decimal(draw(st.integers(0, 10**24))).scaleb(-draw(st.integers(0, 24)))
        text = f"{value:f}"
    # Dress it like venue text: padding zeros after the point, sometimes before it.
    pad = draw(st.integers(0, 12))
    if pad:
        text = text + "0" * pad if "." in text else text + "." + "0" * pad
    text = "0" * draw(st.integers(0, 2)) + text
    return f"{step:f}", text


@settings(max_examples=300, deadline=None)
@given(grid_and_text())
@example(("0.5", "1000000000000000000"))  # on grid, 2e18 units, but 1e19 tenths: too big
@example(("0.01", "92233720368547758.07"))
@example(("0.01", "92233720368547758.08"))
def test_parse_matches_decimal_oracle(case: tuple[str, str]) -> None:
    step, text = case
    grid = Grid(step, name=NAME)
    expected = oracle_parse(grid, text)
    if expected is None:
        with pytest.raises(FixedPointError, match=re.escape(f"{NAME}: value {text!r} ")):
            grid.parse(text)
    else:
        assert grid.parse(text) == expected
        assert grid.parse(text.encode()) == expected
        # Whatever parse accepts, format writes back (up to the padding zeros).
        assert Decimal(grid.format(expected)) == Decimal(text)


_JUNK_ALPHABET = "0123456789.-+eE _,xn\t\n"


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["0.01", "0.5", "10", "0.00000001", "1", "0.25"]),
    st.one_of(st.text(max_size=30), st.text(alphabet=_JUNK_ALPHABET, max_size=30)),
)
def test_junk_text_is_rejected_cleanly(step: str, text: str) -> None:
    grid = Grid(step, name=NAME)
    expected = oracle_parse(grid, text)
    try:
        got = grid.parse(text)
    except FixedPointError as exc:  # any other exception fails the test
        assert expected is None, f"{text!r} rejected: {exc}"
        assert str(exc).startswith(f"{NAME}: value {text!r} ")
    else:
        assert got == expected, f"{text!r} parsed as {got}"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["0.01", "0.5", "10"]), st.binary(max_size=30))
def test_junk_bytes_are_rejected_cleanly(step: str, data: bytes) -> None:
    grid = Grid(step, name=NAME)
    text = data.decode("ascii", "replace")
    expected = oracle_parse(grid, text) if data.isascii() else None
    try:
        got = grid.parse(data)
    except FixedPointError as exc:
        assert expected is None, f"{data!r} rejected: {exc}"
        assert str(exc).startswith(f"{NAME}: value ")
    else:
        assert got == expected, f"{data!r} parsed as {got}"
