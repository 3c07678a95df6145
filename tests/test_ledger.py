"""The ledger cells the compiled risk gates read (arbengine/_core/ledger.pyx): one cell per key
for ever, exact int amounts, floats refused rather than truncated, and a stub that matches."""

from __future__ import annotations

import ast
import copy
import inspect
import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import arbengine._core.ledger as ledger_module
from arbengine._core.ledger import Account, AssetLine, Ledger, VenueLine

INT64_MAX = 2**63 - 1
STUB = Path(ledger_module.__file__).with_name("ledger.pyi")


def test_a_lookup_returns_the_same_cell_for_ever() -> None:
    led = Ledger()
    acct = led.account("binance", "USDT")
    line = led.asset("BTC")
    venue = led.venue("okx")
    assert (type(acct), type(line), type(venue)) == (Account, AssetLine, VenueLine)
    acct.available = 5
    line.inventory = -3
    venue.open_orders = 2
    for _ in range(3):
        assert led.account("binance", "USDT") is acct
        assert led.asset("BTC") is line
        assert led.venue("okx") is venue
    # A different key is a different cell, even with a part in common.
    assert led.account("binance", "BTC") is not acct
    assert led.account("okx", "USDT") is not acct
    assert led.asset("ETH") is not line
    assert led.venue("binance") is not venue
    assert (acct.available, line.inventory, venue.open_orders) == (5, -3, 2)
    assert (acct.venue, acct.asset, acct.key) == ("binance", "USDT", ("binance", "USDT"))
    assert (line.asset, venue.venue) == ("BTC", "okx")
    # Listed in the order first looked up, each once.
    assert led.accounts() == [acct, led.account("binance", "BTC"), led.account("okx", "USDT")]
    assert led.asset_lines() == [line, led.asset("ETH")]
    assert led.venue_lines() == [venue, led.venue("binance")]


def test_a_cell_cannot_be_copied() -> None:
    # A copy would be a cell nobody updates: refused rather than silently stale.
    led = Ledger()
    for cell in (led.account("binance", "USDT"), led.asset("BTC"), led.venue("okx")):
        with pytest.raises(TypeError):
            pickle.dumps(cell)
        with pytest.raises(TypeError):
            copy.copy(cell)


def test_a_new_cell_holds_int_zero() -> None:
    led = Ledger()
    acct, line, venue = led.account("kraken", "XBT"), led.asset("XBT"), led.venue("kraken")
    values = [acct.available, line.inventory, line.open_buy, line.open_sell]
    values += [venue.open_orders, led.open_total]
    assert values == [0] * 6
    assert all(type(v) is int for v in values)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda led: led.account("binance", "USDT"), "available"),
        (lambda led: led.asset("BTC"), "inventory"),
        (lambda led: led.asset("BTC"), "open_buy"),
        (lambda led: led.asset("BTC"), "open_sell"),
    ],
)
def test_amounts_are_exact_ints_beyond_int64(make: Any, field: str) -> None:
    cell = make(Ledger())
    for value in (10**30 + 1, -(10**30) - 1, INT64_MAX + 1, 0):
        setattr(cell, field, value)
        got = getattr(cell, field)
        assert got == value and type(got) is int
    setattr(cell, field, 7)
    for bad in (1.5, 7.0, Decimal(7), "7", None, True):
        with pytest.raises(TypeError, match=field):
            setattr(cell, field, bad)
        assert getattr(cell, field) == 7  # unchanged


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda led: led.venue("okx"), "open_orders"),
        (lambda led: led, "open_total"),
    ],
)
def test_counts_refuse_floats_rather_than_truncate_them(make: Any, field: str) -> None:
    cell = make(Ledger())
    setattr(cell, field, 3)
    for bad in (1.5, 3.0, Decimal(2), "2", None, True):
        with pytest.raises(TypeError, match=field):
            setattr(cell, field, bad)
        assert getattr(cell, field) == 3
    with pytest.raises(OverflowError, match=field):
        setattr(cell, field, INT64_MAX + 1)
    setattr(cell, field, INT64_MAX)
    assert getattr(cell, field) == INT64_MAX


def test_a_bad_key_is_refused_and_leaves_no_cell() -> None:
    led = Ledger()
    with pytest.raises(ValueError, match="venue"):
        led.account("", "USDT")
    with pytest.raises(ValueError, match="asset"):
        led.account("binance", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="asset"):
        led.asset("")
    with pytest.raises(ValueError, match="venue"):
        led.venue(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        led.venue(1)  # type: ignore[arg-type]
    assert (led.accounts(), led.asset_lines(), led.venue_lines()) == ([], [], [])


def test_the_names_are_read_only() -> None:
    led = Ledger()
    acct = led.account("binance", "USDT")
    for cell, name in ((acct, "venue"), (acct, "asset"), (acct, "key")):
        with pytest.raises(AttributeError):
            setattr(cell, name, "x")
    with pytest.raises(AttributeError):
        led.asset("BTC").asset = "ETH"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        led.venue("okx").venue = "x"  # type: ignore[misc]
    assert led.account("binance", "USDT") is acct and acct.key == ("binance", "USDT")


# --- the stub ------------------------------------------------------------------------------


def stub_classes() -> dict[str, dict[str, Any]]:
    """Per class of ledger.pyi: name -> "attr" (settable), "property" (read-only) or the
    parameter names of a method."""
    tree = ast.parse(STUB.read_text())
    classes: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        members: dict[str, Any] = {}
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                members[item.target.id] = "attr"
            elif isinstance(item, ast.FunctionDef):
                decorators = [d.id for d in item.decorator_list if isinstance(d, ast.Name)]
                if "property" in decorators:
                    members[item.name] = "property"
                else:
                    members[item.name] = [a.arg for a in item.args.args]
        classes[node.name] = members
    return classes


def runtime_members(cls: type, instance: object) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        value = getattr(cls, name)
        if callable(value):
            members[name] = list(inspect.signature(value).parameters)
        else:
            try:  # writing back what it holds: settable or not, nothing changes
                setattr(instance, name, getattr(instance, name))
                members[name] = "attr"
            except AttributeError:
                members[name] = "property"
    return members


def test_the_stub_matches_the_module() -> None:
    stub = stub_classes()
    led = Ledger()
    instances = {
        "Account": led.account("binance", "USDT"),
        "AssetLine": led.asset("BTC"),
        "VenueLine": led.venue("okx"),
        "Ledger": led,
    }
    public = {n for n in dir(ledger_module) if not n.startswith("_")}
    assert set(stub) == public == set(instances)
    for name, instance in instances.items():
        members = stub[name]
        init = members.pop("__init__")
        assert init[0] == "self"
        assert members == runtime_members(getattr(ledger_module, name), instance), name
        # __cinit__ takes the arguments; calling the class with the stub's names works.
        built = getattr(ledger_module, name)(**{a: "x" for a in init[1:]})
        assert type(built) is type(instance)
