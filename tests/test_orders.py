"""Exact money across instruments: grid units -> atoms, fees rounded against us."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbengine._core.instrument import Instrument
from arbengine.orders import (
    ATOMS,
    AtomScale,
    Order,
    OrderStatus,
    Side,
    atoms,
    from_atoms,
)

SPOT = Instrument("binance", "BTCUSDT", "BTC", "USDT", "0.01", "0.00001", size_step="0.00000001")
SWAP = Instrument("okx", "BTC-USDT-SWAP", "BTC", "USDT", "0.1", "1", multiplier="0.01")


def test_spot_units_to_atoms() -> None:
    scale = AtomScale.of(SPOT)
    price, size = SPOT.price.parse("61000.25"), SPOT.size.parse("0.5")
    assert scale.base(size) == ATOMS // 2
    assert scale.notional(price, size) == atoms("30500.125")
    # 7.5 bps of 30500.125 = 22.87509375 exactly: no rounding needed here.
    assert scale.fee(price, size, Decimal("7.5")) == atoms("22.87509375")


def test_contracts_carry_the_multiplier() -> None:
    scale = AtomScale.of(SWAP)
    assert scale.base(3) == atoms("0.03")  # 3 contracts of 0.01 BTC
    assert scale.notional(SWAP.price.parse("60000.1"), 3) == atoms("1800.003")


def test_fee_rounds_up_to_the_atom() -> None:
    tiny = Instrument("x", "T", "A", "B", "0.000000001", "0.000000001")
    scale = AtomScale.of(tiny)
    # notional = 1e-9 * 1e-9 = 1e-18 = 1 atom; 1 bps of it is 1e-4 atom: rounds up to 1.
    assert scale.notional(1, 1) == 1
    assert scale.fee(1, 1, Decimal(1)) == 1
    assert scale.fee(1, 1, Decimal(0)) == 0


@given(
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=1, max_value=10**12),
    st.decimals(min_value=0, max_value=100, places=3),
)
def test_fee_is_the_ceiling_of_the_exact_fee(price: int, size: int, bps: Decimal) -> None:
    scale = AtomScale.of(SPOT)
    exact = Decimal(scale.notional(price, size)) * bps / 10_000
    fee = scale.fee(price, size, bps)
    assert fee - 1 < exact <= fee or (exact == 0 and fee == 0)


def test_atoms_are_exact_and_refuse_floats() -> None:
    big = "12345678901.123456789012345678"  # 29 significant digits: past Decimal's default
    assert from_atoms(atoms(big)) == Decimal(big)
    assert from_atoms(-5) == Decimal("-0.000000000000000005")
    assert atoms(3) == 3 * ATOMS
    with pytest.raises(TypeError, match="not float"):
        atoms(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 18 decimals"):
        atoms("0.0000000000000000001")
    with pytest.raises(ValueError, match="not a finite amount"):
        atoms("NaN")


def test_order_state_helpers() -> None:
    order = Order("c1", "a1", SPOT, Side.BUY, price=6_100_025, size=50_000_000)
    assert order.venue == "binance" and order.remaining == 50_000_000
    assert Side.BUY.opposite is Side.SELL
    assert [s.done for s in OrderStatus] == [False, False, False, True, True, True, False]
