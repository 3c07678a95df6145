"""Venue reference data → Instrument: documented replies, overrides, errors, and the fetch.

The fixtures in tests/data/reference are the venues' published documentation examples
(README.md there says where each comes from). Every parse is checked field by field against
the documented texts; every error must be one line naming venue, symbol and field. The
fetch tests run a real aiohttp server on 127.0.0.1 that serves the fixtures at each venue's
real path and records the query each request carried.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from arbengine._core.instrument import Instrument
from arbengine.venues.errors import VenueError
from arbengine.venues.reference import (
    OVERRIDE_FIELDS,
    VENUES,
    Listing,
    ParseReply,
    ReferenceDataError,
    apply_overrides,
    binance_spot_instruments,
    binance_usdm_instruments,
    bybit_linear_instruments,
    bybit_spot_instruments,
    coinbase_instruments,
    fetch_instruments,
    fetch_listings,
    kraken_instruments,
    okx_instruments,
)
from arbengine.venues.rest import RestClient, RestError, TokenBucket
from arbengine.venues.ws import Backoff

DATA = Path(__file__).resolve().parent / "data" / "reference"


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def mutate(name: str, change: Callable[[Any], object]) -> bytes:
    """The fixture with ``change`` applied in place to its parsed JSON (its result unused)."""
    doc = json.loads(raw(name))
    change(doc)
    return json.dumps(doc).encode()


def fails(call: Callable[[], object], *fragments: str) -> str:
    """``call`` raises a one-line ReferenceDataError containing every fragment."""
    with pytest.raises(ReferenceDataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(info.value, VenueError) and isinstance(info.value, ValueError)
    return message


# --- the documented replies, field by field ------------------------------------------------


@dataclass(frozen=True)
class Case:
    fixture: str
    parse: ParseReply
    venue: str
    symbol: str
    base: str
    quote: str
    tick: str  # Grid.step texts (trailing zeros dropped)
    lot_text: str
    size_step: str
    lot_units: int  # the lot in size units
    multiplier: str
    min_size_units: int
    min_notional: str  # kept exactly as the venue wrote it
    status: str
    price_decimals: int | None = None
    qty_decimals: int | None = None


CASES = [
    # PRICE_FILTER.tickSize "0.00000100", LOT_SIZE.stepSize/minQty "0.00100000" and
    # NOTIONAL.minNotional "10.00000000": trailing zeros are fine. baseAssetPrecision 8 gives
    # the book's size step, finer than the lot (1 lot = 100000 steps of 1e-8).
    Case(
        "binance_spot_exchange_info.json",
        binance_spot_instruments,
        "binance_spot",
        "ETHBTC",
        "ETH",
        "BTC",
        "0.000001",
        "0.001",
        "0.00000001",
        100_000,
        "1",
        100_000,
        "10.00000000",
        "TRADING",
    ),
    Case(
        "binance_usdm_exchange_info.json",
        binance_usdm_instruments,
        "binance_usdm",
        "BLZUSDT",
        "BLZ",
        "USDT",
        "0.0001",
        "1",
        "1",
        1,
        "1",
        1,
        "5.0",
        "TRADING",
    ),
    # OKX spot publishes no minimum notional: "0".
    Case(
        "okx_instruments_spot.json",
        okx_instruments,
        "okx",
        "BTC-USDT",
        "BTC",
        "USDT",
        "0.1",
        "0.00000001",
        "0.00000001",
        1,
        "1",
        1000,
        "0",
        "live",
    ),
    # Sizes in contracts of ctVal x ctMult = 0.01 BTC; base/quote from instFamily.
    Case(
        "okx_instruments_swap.json",
        okx_instruments,
        "okx",
        "BTC-USDT-SWAP",
        "BTC",
        "USDT",
        "0.1",
        "0.01",
        "0.01",
        1,
        "0.01",
        1,
        "0",
        "live",
    ),
    # Spot: basePrecision is the order step; minOrderQty 0.000011 = 11 steps; minOrderAmt 5.
    Case(
        "bybit_instruments_spot.json",
        bybit_spot_instruments,
        "bybit_spot",
        "BTCUSDT",
        "BTC",
        "USDT",
        "0.1",
        "0.000001",
        "0.000001",
        1,
        "1",
        11,
        "5",
        "Trading",
    ),
    Case(
        "bybit_instruments_linear.json",
        bybit_linear_instruments,
        "bybit_linear",
        "BTCUSDT",
        "BTC",
        "USDT",
        "0.1",
        "0.001",
        "0.001",
        1,
        "1",
        1,
        "5",
        "Trading",
    ),
    # wsname "ETH/XBT" is "ETH/BTC" on WebSocket v2; lot_decimals 8 -> lot 1e-8; ordermin
    # 0.01 = 1e6 lots; the book's text decimals (pair_decimals, lot_decimals) come along.
    Case(
        "kraken_asset_pairs.json",
        kraken_instruments,
        "kraken",
        "ETH/BTC",
        "ETH",
        "BTC",
        "0.00001",
        "0.00000001",
        "0.00000001",
        1,
        "1",
        1_000_000,
        "0.00002",
        "online",
        price_decimals=5,
        qty_decimals=8,
    ),
    Case(
        "coinbase_product.json",
        coinbase_instruments,
        "coinbase",
        "BTC-USD",
        "BTC",
        "USD",
        "0.00000001",
        "0.00000001",
        "0.00000001",
        1,
        "1",
        1,
        "0.00000001",
        "online",
    ),
]


def check(listing: Listing, case: Case, venue: str | None = None) -> None:
    inst = listing.instrument
    assert isinstance(inst, Instrument)
    assert (inst.venue, inst.symbol) == (venue or case.venue, case.symbol)
    assert (inst.base, inst.quote) == (case.base, case.quote)
    assert inst.price.step == case.tick
    assert inst.size.step == case.size_step
    assert inst.lot == case.lot_units
    assert inst.size.format(inst.lot, True) == case.lot_text
    assert inst.multiplier.step == case.multiplier
    assert inst.min_size == case.min_size_units
    assert inst.min_notional == case.min_notional
    assert listing.status == case.status
    assert (listing.price_decimals, listing.qty_decimals) == (
        case.price_decimals,
        case.qty_decimals,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.fixture.removesuffix(".json") for c in CASES])
def test_documented_reply_parses_exactly(case: Case) -> None:
    listings = case.parse(raw(case.fixture), case.venue, [case.symbol])
    assert list(listings) == [case.symbol]
    check(listings[case.symbol], case)


def test_prices_parse_on_the_loaded_grids() -> None:
    # The grids are the ones the feeds use: a documented price and size land exactly.
    spot = binance_spot_instruments(raw(CASES[0].fixture), "binance_spot", ["ETHBTC"])
    inst = spot["ETHBTC"].instrument
    assert inst.price.parse("0.06137100") == 61371
    assert inst.size.parse("12.34567800") == 1_234_567_800  # finer than the lot: a book size
    swap = okx_instruments(raw("okx_instruments_swap.json"), "okx", ["BTC-USDT-SWAP"])
    assert swap["BTC-USDT-SWAP"].instrument.size.parse("40") == 4000  # 40 contracts


def test_coinbase_products_list_form() -> None:
    product = json.loads(raw("coinbase_product.json"))
    body = json.dumps({"products": [product], "num_products": 1}).encode()
    check(coinbase_instruments(body, "coinbase", ["BTC-USD"])["BTC-USD"], CASES[7])


def test_price_increment_absent_falls_back_to_quote_increment() -> None:
    def change(doc: dict[str, Any]) -> None:
        del doc["price_increment"]
        doc["quote_increment"] = "0.01"

    body = mutate("coinbase_product.json", change)
    assert coinbase_instruments(body, "cb", ["BTC-USD"])["BTC-USD"].instrument.price.step == "0.01"


def test_binance_min_notional_absent_or_legacy() -> None:
    def legacy(doc: dict[str, Any]) -> None:
        filters = doc["symbols"][0]["filters"]
        filters[:] = [f for f in filters if f["filterType"] != "NOTIONAL"]
        filters.append({"filterType": "MIN_NOTIONAL", "minNotional": "0.00100000"})

    def absent(doc: dict[str, Any]) -> None:
        filters = doc["symbols"][0]["filters"]
        filters[:] = [f for f in filters if f["filterType"] != "NOTIONAL"]

    body = mutate(CASES[0].fixture, legacy)
    got = binance_spot_instruments(body, "b", ["ETHBTC"])["ETHBTC"].instrument
    assert got.min_notional == "0.00100000"
    body = mutate(CASES[0].fixture, absent)
    assert binance_spot_instruments(body, "b", ["ETHBTC"])["ETHBTC"].instrument.min_notional == "0"
    usdm = mutate(
        CASES[1].fixture,
        lambda d: d["symbols"][0]["filters"].pop(5),  # MIN_NOTIONAL
    )
    got = binance_usdm_instruments(usdm, "u", ["BLZUSDT"])["BLZUSDT"].instrument
    assert got.min_notional == "0"


def test_bybit_min_notional_absent_and_spot_qty_step() -> None:
    def change(doc: dict[str, Any]) -> None:
        del doc["result"]["list"][0]["lotSizeFilter"]["minNotionalValue"]

    body = mutate("bybit_instruments_linear.json", change)
    got = bybit_linear_instruments(body, "y", ["BTCUSDT"])["BTCUSDT"].instrument
    assert got.min_notional == "0"

    def step(doc: dict[str, Any]) -> None:
        doc["result"]["list"][0]["lotSizeFilter"]["qtyStep"] = "0.000011"

    body = mutate("bybit_instruments_spot.json", step)
    got = bybit_spot_instruments(body, "y", ["BTCUSDT"])["BTCUSDT"].instrument
    assert (got.size.step, got.min_size) == ("0.000011", 1)


def test_kraken_renames_v1_asset_names_and_skips_pairs_without_wsname() -> None:
    def change(doc: dict[str, Any]) -> None:
        pair = doc["result"]["XETHXXBT"]
        doc["result"]["XXBTZUSD"] = dict(pair, wsname="XBT/USD", altname="XBTUSD")
        doc["result"]["XXDGZUSD"] = dict(pair, wsname="XDG/USD")
        doc["result"]["XETHXXBT.d"] = {k: v for k, v in pair.items() if k != "wsname"}

    body = mutate("kraken_asset_pairs.json", change)
    got = kraken_instruments(body, "kraken", ["BTC/USD", "DOGE/USD", "ETH/BTC"])
    assert list(got) == ["BTC/USD", "DOGE/USD", "ETH/BTC"]
    assert (got["BTC/USD"].instrument.base, got["BTC/USD"].instrument.quote) == ("BTC", "USD")
    assert got["DOGE/USD"].instrument.base == "DOGE"
    fails(
        lambda: kraken_instruments(body, "kraken", ["XBT/USD"]),
        "kraken:XBT/USD",
        "not in the venue's reply",
    )


# --- overrides ---------------------------------------------------------------------------


def test_overrides_win_over_the_venue() -> None:
    got = binance_spot_instruments(
        raw(CASES[0].fixture),
        "binance_spot",
        ["ETHBTC"],
        overrides={"ETHBTC": {"tick": "0.00001", "size_step": "0.001", "min_notional": "0.0001"}},
    )["ETHBTC"].instrument
    assert (got.price.step, got.size.step, got.lot, got.min_size) == ("0.00001", "0.001", 1, 1)
    assert got.min_notional == "0.0001"


def test_override_stands_in_for_a_missing_or_bad_venue_field() -> None:
    def no_price_filter(doc: dict[str, Any]) -> None:
        filters = doc["symbols"][0]["filters"]
        filters[:] = [f for f in filters if f["filterType"] != "PRICE_FILTER"]

    body = mutate(CASES[0].fixture, no_price_filter)
    fails(
        lambda: binance_spot_instruments(body, "b", ["ETHBTC"]),
        "b:ETHBTC",
        "missing filter PRICE_FILTER",
    )
    got = binance_spot_instruments(body, "b", ["ETHBTC"], overrides={"ETHBTC": {"tick": "0.01"}})
    assert got["ETHBTC"].instrument.price.step == "0.01"

    def zero_tick(doc: dict[str, Any]) -> None:
        doc["symbols"][0]["filters"][0]["tickSize"] = "0.00000000"  # "disabled" per docs

    body = mutate(CASES[0].fixture, zero_tick)
    fails(
        lambda: binance_spot_instruments(body, "b", ["ETHBTC"]),
        "b:ETHBTC",
        "tick '0.00000000' from PRICE_FILTER.tickSize",
        "zero",
    )
    got = binance_spot_instruments(body, "b", ["ETHBTC"], overrides={"ETHBTC": {"tick": "0.001"}})
    assert got["ETHBTC"].instrument.price.step == "0.001"


def test_okx_multiplier_override_skips_the_contract_fields() -> None:
    def change(doc: dict[str, Any]) -> None:
        del doc["data"][0]["ctVal"]

    body = mutate("okx_instruments_swap.json", change)
    fails(
        lambda: okx_instruments(body, "okx", ["BTC-USDT-SWAP"]),
        "okx:BTC-USDT-SWAP",
        "missing field data[BTC-USDT-SWAP].ctVal",
    )
    got = okx_instruments(
        body, "okx", ["BTC-USDT-SWAP"], overrides={"BTC-USDT-SWAP": {"multiplier": "0.001"}}
    )
    assert got["BTC-USDT-SWAP"].instrument.multiplier.step == "0.001"


def okx_swap() -> Instrument:
    listing = okx_instruments(raw("okx_instruments_swap.json"), "okx", ["BTC-USDT-SWAP"])
    return listing["BTC-USDT-SWAP"].instrument


def binance_spot() -> Instrument:
    return binance_spot_instruments(raw(CASES[0].fixture), "binance_spot", ["ETHBTC"])[
        "ETHBTC"
    ].instrument


def test_apply_overrides_replaces_only_what_it_names() -> None:
    inst = okx_swap()
    assert apply_overrides(inst, {}) is inst
    got = apply_overrides(inst, {"lot": "1", "min_size": "1"})
    # The size step had been the lot: it follows the new lot.
    assert (got.size.step, got.lot, got.min_size) == ("1", 1, 1)
    assert (got.price.step, got.multiplier.step, got.min_notional) == ("0.1", "0.01", "0")
    assert (got.venue, got.symbol, got.base, got.quote) == ("okx", "BTC-USDT-SWAP", "BTC", "USDT")
    got = apply_overrides(inst, {"tick": "0.5", "min_notional": "5"})
    assert (got.price.step, got.min_notional, got.size.step, got.lot) == ("0.5", "5", "0.01", 1)


def test_apply_overrides_keeps_a_finer_size_step() -> None:
    inst = binance_spot()  # lot 0.001 on a 1e-8 size step
    got = apply_overrides(inst, {"lot": "0.01", "min_size": "0.01"})
    assert (got.size.step, got.lot, got.min_size) == ("0.00000001", 1_000_000, 1_000_000)
    got = apply_overrides(inst, {"size_step": "0.0001"})
    assert (got.size.step, got.lot, got.min_size) == ("0.0001", 10, 10)


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"tik": "0.1"}, ["unknown override field 'tik'", "known: tick, lot"]),
        ({"tick": 0.1}, ["override tick must be decimal text", "got number 0.1"]),
        ({"lot": 1}, ["override lot must be decimal text", "got number 1"]),
        ({"tick": "1e-3"}, ["override tick '1e-3' is not plain decimal text"]),
        ({"min_notional": "-5"}, ["override min_notional '-5' is not plain decimal text"]),
        ({"tick": ""}, ["override tick '' is not plain decimal text"]),
        ({"tick": "0"}, ["tick '0' from override is not a usable step", "zero"]),
        ({"lot": "0.1"}, ["min_size '0.01' from the instrument is off the 0.1 size grid"]),
        (
            {"size_step": "0.02"},
            ["lot '0.01' from the instrument is not a whole number of size_step '0.02'"],
        ),
        ({"min_size": "0.015"}, ["min_size '0.015' from override is off the 0.01 size grid"]),
        (["tick"], ["overrides must be a mapping"]),
    ],
)
def test_bad_overrides_fail_with_one_line(overrides: Any, fragments: list[str]) -> None:
    fails(lambda: apply_overrides(okx_swap(), overrides), "okx:BTC-USDT-SWAP", *fragments)


def test_override_fields_are_the_instrument_constructor_fields() -> None:
    assert OVERRIDE_FIELDS == ("tick", "lot", "size_step", "multiplier", "min_size", "min_notional")


def test_overrides_must_name_requested_symbols() -> None:
    fails(
        lambda: okx_instruments(
            raw("okx_instruments_spot.json"), "okx", ["BTC-USDT"], overrides={"ETH-USDT": {}}
        ),
        "okx: overrides given for 'ETH-USDT', which is not requested",
    )
    fails(
        lambda: okx_instruments(
            raw("okx_instruments_spot.json"),
            "okx",
            ["BTC-USDT"],
            overrides={"BTC-USDT": {"tick_size": "1"}},
        ),
        "okx:BTC-USDT",
        "unknown override field 'tick_size'",
    )


# --- bad replies -------------------------------------------------------------------------


def binance_symbol(change: Callable[[dict[str, Any]], object]) -> bytes:
    return mutate(CASES[0].fixture, lambda doc: change(doc["symbols"][0]))


def lot_size(entry: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in entry["filters"] if f["filterType"] == "LOT_SIZE")
    return found


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            binance_symbol(lambda s: lot_size(s).pop("stepSize")),
            ["binance_spot:ETHBTC", "missing field LOT_SIZE.stepSize"],
        ),
        (
            binance_symbol(lambda s: lot_size(s).update(minQty=0.001)),
            ["binance_spot:ETHBTC", "LOT_SIZE.minQty must be decimal text", "got number 0.001"],
        ),
        (
            binance_symbol(lambda s: lot_size(s).update(stepSize="1e-3")),
            ["binance_spot:ETHBTC", "LOT_SIZE.stepSize '1e-3' is not plain decimal text"],
        ),
        (
            binance_symbol(lambda s: lot_size(s).update(minQty="0.000000015")),
            ["binance_spot:ETHBTC", "min_size '0.000000015' from LOT_SIZE.minQty", "grid"],
        ),
        (
            binance_symbol(lambda s: s.update(baseAssetPrecision="8")),
            ["binance_spot:ETHBTC", "symbols[ETHBTC].baseAssetPrecision must be an integer"],
        ),
        (
            binance_symbol(lambda s: s.pop("quoteAsset")),
            ["binance_spot:ETHBTC", "missing field symbols[ETHBTC].quoteAsset"],
        ),
        (
            binance_symbol(lambda s: s.update(status="BREAK")),
            ["binance_spot:ETHBTC", "not trading: status is 'BREAK'", "allow_halted"],
        ),
        (
            mutate(CASES[0].fixture, lambda d: d["symbols"].append(d["symbols"][0])),
            ["binance_spot:ETHBTC", "listed twice"],
        ),
        (b'{"code":-1121,"msg":"Invalid symbol."}', ["binance_spot", "missing field symbols"]),
        (b"<html>busy</html>", ["binance_spot", "the reply is not JSON"]),
        (b"[1, 2]", ["binance_spot", "the reply is an array, not a JSON object"]),
    ],
)
def test_bad_binance_replies_fail_with_one_line(body: bytes, fragments: list[str]) -> None:
    fails(lambda: binance_spot_instruments(body, "binance_spot", ["ETHBTC"]), *fragments)


def test_unknown_symbol_and_bad_requests() -> None:
    body = raw(CASES[0].fixture)
    fails(
        lambda: binance_spot_instruments(body, "binance_spot", ["ETHBTC", "BTCUSDT"]),
        "binance_spot:BTCUSDT: not in the venue's reply",
    )
    fails(lambda: binance_spot_instruments(body, "b", []), "b: no symbols requested")
    fails(lambda: binance_spot_instruments(body, "b", ["ETHBTC", "ETHBTC"]), "requested twice")
    fails(lambda: binance_spot_instruments(body, "b", "ETHBTC"), "got the string 'ETHBTC'")
    fails(lambda: binance_spot_instruments(body, "b", [" ETHBTC"]), "bad symbol ' ETHBTC'")


def okx_entry(name: str, change: Callable[[dict[str, Any]], object]) -> bytes:
    return mutate(name, lambda doc: change(doc["data"][0]))


@pytest.mark.parametrize(
    ("body", "symbol", "fragments"),
    [
        (
            okx_entry("okx_instruments_spot.json", lambda e: e.update(state="suspend")),
            "BTC-USDT",
            ["okx:BTC-USDT", "not trading: state is 'suspend'"],
        ),
        (
            okx_entry("okx_instruments_spot.json", lambda e: e.update(tickSz=0.1)),
            "BTC-USDT",
            ["okx:BTC-USDT", "data[BTC-USDT].tickSz must be decimal text", "got number 0.1"],
        ),
        (
            okx_entry("okx_instruments_spot.json", lambda e: e.update(minSz="")),
            "BTC-USDT",
            ["okx:BTC-USDT", "data[BTC-USDT].minSz '' is not plain decimal text"],
        ),
        (
            okx_entry("okx_instruments_spot.json", lambda e: e.update(instType="MARGIN")),
            "BTC-USDT",
            ["okx:BTC-USDT", "instType is 'MARGIN', expected 'SPOT'"],
        ),
        (
            okx_entry(
                "okx_instruments_swap.json",
                lambda e: e.update(ctType="inverse", ctValCcy="USD", instFamily="BTC-USD"),
            ),
            "BTC-USDT-SWAP",
            ["okx:BTC-USDT-SWAP", "ctType is 'inverse'", "only linear"],
        ),
        (
            okx_entry("okx_instruments_swap.json", lambda e: e.update(ctValCcy="USDT")),
            "BTC-USDT-SWAP",
            ["okx:BTC-USDT-SWAP", "ctValCcy is 'USDT', expected the base 'BTC'"],
        ),
        (
            okx_entry("okx_instruments_swap.json", lambda e: e.update(instFamily="", uly="")),
            "BTC-USDT-SWAP",
            ["okx:BTC-USDT-SWAP", "data[BTC-USDT-SWAP].uly is empty"],
        ),
        (
            b'{"code":"51001","msg":"Instrument ID does not exist","data":[]}',
            "BTC-USDT",
            ["okx: the reply has code '51001'", "Instrument ID does not exist"],
        ),
        (
            b'{"code":"0","msg":"","data":[]}',
            "BTC-USDT",
            ["okx:BTC-USDT: not in the venue's reply"],
        ),
    ],
)
def test_bad_okx_replies_fail_with_one_line(body: bytes, symbol: str, fragments: list[str]) -> None:
    fails(lambda: okx_instruments(body, "okx", [symbol]), *fragments)


def bybit_entry(name: str, change: Callable[[dict[str, Any]], object]) -> bytes:
    return mutate(name, lambda doc: change(doc["result"]["list"][0]))


@pytest.mark.parametrize(
    ("parse", "body", "fragments"),
    [
        (
            bybit_linear_instruments,
            bybit_entry("bybit_instruments_linear.json", lambda e: e.update(status="Settling")),
            ["y:BTCUSDT", "not trading: status is 'Settling'"],
        ),
        (
            bybit_linear_instruments,
            bybit_entry(
                "bybit_instruments_linear.json", lambda e: e["lotSizeFilter"].pop("qtyStep")
            ),
            ["y:BTCUSDT", "missing field result.list[BTCUSDT].lotSizeFilter.qtyStep"],
        ),
        (
            bybit_spot_instruments,
            bybit_entry(
                "bybit_instruments_spot.json", lambda e: e["priceFilter"].update(tickSize=1)
            ),
            ["y:BTCUSDT", "priceFilter.tickSize must be decimal text", "got number 1"],
        ),
        (
            bybit_spot_instruments,
            raw("bybit_instruments_linear.json"),
            ["y: result.category is 'linear', expected 'spot'"],
        ),
        (
            bybit_spot_instruments,
            b'{"retCode":10001,"retMsg":"params error: symbol invalid","result":{}}',
            ["y: the reply has retCode number 10001", "symbol invalid"],
        ),
        (
            bybit_linear_instruments,
            b'{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[]}}',
            ["y:BTCUSDT: not in the venue's reply", "only Trading symbols"],
        ),
    ],
)
def test_bad_bybit_replies_fail_with_one_line(
    parse: ParseReply, body: bytes, fragments: list[str]
) -> None:
    fails(lambda: parse(body, "y", ["BTCUSDT"]), *fragments)


def kraken_text(old: str, new: str) -> bytes:
    text = raw("kraken_asset_pairs.json").decode()
    assert old in text
    return text.replace(old, new).encode()


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            kraken_text('"status": "online"', '"status": "cancel_only"'),
            ["kraken:ETH/BTC", "not trading: status is 'cancel_only'"],
        ),
        # A number where text is expected is refused and shown with its exact wire text.
        (
            kraken_text('"ordermin": "0.01"', '"ordermin": 0.0100'),
            ["kraken:ETH/BTC", "result.XETHXXBT.ordermin must be decimal text", "number 0.0100"],
        ),
        (
            kraken_text('"tick_size": "0.00001",', ""),
            ["kraken:ETH/BTC", "missing field result.XETHXXBT.tick_size"],
        ),
        (
            kraken_text('"lot_decimals": 8', '"lot_decimals": "8"'),
            ["kraken:ETH/BTC", "lot_decimals must be an integer, got str '8'"],
        ),
        (
            kraken_text('"pair_decimals": 5', '"pair_decimals": 19'),
            ["kraken:ETH/BTC", "pair_decimals 19 is outside [0, 18]"],
        ),
        (
            kraken_text('"status": "online"', '"status": null'),
            ["kraken:ETH/BTC", "result.XETHXXBT.status must be a JSON string, got null"],
        ),
        (
            kraken_text('"ordermin": "0.01"', '"ordermin": "0.000000001"'),
            ["kraken:ETH/BTC", "min_size '0.000000001' from result.XETHXXBT.ordermin"],
        ),
        (
            b'{"error":["EQuery:Unknown asset pair"]}',
            ["kraken: the reply has errors", "EQuery:Unknown asset pair"],
        ),
        (
            kraken_text('"tick_size": "0.00001"', '"tick_size": NaN'),
            ["kraken: the reply is not JSON", "NaN"],
        ),
    ],
)
def test_bad_kraken_replies_fail_with_one_line(body: bytes, fragments: list[str]) -> None:
    fails(lambda: kraken_instruments(body, "kraken", ["ETH/BTC"]), *fragments)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"trading_disabled": True}, ["not trading", "'online (trading_disabled)'"]),
        ({"is_disabled": True}, ["not trading", "'online (is_disabled)'"]),
        ({"cancel_only": True}, ["not trading", "'online (cancel_only)'"]),
        ({"status": "offline"}, ["not trading", "'offline'"]),
        ({"trading_disabled": "false"}, ["trading_disabled must be true or false"]),
        ({"product_type": "FUTURE"}, ["only spot products are supported"]),
        ({"base_increment": None}, ["base_increment must be decimal text", "got null"]),
        ({"product_id": "ETH-USD"}, ["coinbase:BTC-USD: not in the venue's reply"]),
    ],
)
def test_bad_coinbase_replies_fail_with_one_line(
    change: dict[str, Any], fragments: list[str]
) -> None:
    body = mutate("coinbase_product.json", lambda doc: doc.update(change))
    fails(
        lambda: coinbase_instruments(body, "coinbase", ["BTC-USD"]), "coinbase:BTC-USD", *fragments
    )


def test_halted_instruments_load_when_allowed() -> None:
    body = binance_symbol(lambda s: s.update(status="HALT"))
    listing = binance_spot_instruments(body, "b", ["ETHBTC"], allow_halted=True)["ETHBTC"]
    assert listing.status == "HALT"
    assert listing.instrument.price.step == "0.000001"
    body = mutate("coinbase_product.json", lambda doc: doc.update(trading_disabled=True))
    listing = coinbase_instruments(body, "cb", ["BTC-USD"], allow_halted=True)["BTC-USD"]
    assert listing.status == "online (trading_disabled)"


# --- fetch over a real HTTP server on 127.0.0.1 --------------------------------------------


@dataclass
class Venue:
    """Serves fixtures at venue paths; a reply is chosen by path and decoded query."""

    url: str = ""
    replies: dict[tuple[str, str], web.Response] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)

    def serve(self, path: str, query: str, body: bytes, status: int = 200) -> None:
        self.replies[(path, query)] = web.Response(
            body=body, status=status, content_type="application/json"
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = (request.path, request.query_string)  # the decoded query string
        self.seen.append(key)
        return self.replies.pop(key, web.Response(status=404, text="no such fixture"))

    def client(self) -> RestClient:
        return RestClient(
            self.url,
            limiter=TokenBucket(capacity=100, rate=1_000),
            backoff=Backoff(base_s=0.001, cap_s=0.01),
            timeout_s=2.0,
            max_attempts=1,
        )


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    server = Venue()
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


# (venue kind, symbols, [(path, decoded query string, fixture)], cases in symbol order)
FETCHES = [
    (
        "binance_spot",
        ["ETHBTC"],
        [("/api/v3/exchangeInfo", 'symbols=["ETHBTC"]', "binance_spot_exchange_info.json")],
        [CASES[0]],
    ),
    (
        "binance_usdm",
        ["BLZUSDT"],
        [("/fapi/v1/exchangeInfo", "", "binance_usdm_exchange_info.json")],
        [CASES[1]],
    ),
    (
        "okx",
        ["BTC-USDT", "BTC-USDT-SWAP"],
        [
            (
                "/api/v5/public/instruments",
                "instType=SPOT&instId=BTC-USDT",
                "okx_instruments_spot.json",
            ),
            (
                "/api/v5/public/instruments",
                "instType=SWAP&instId=BTC-USDT-SWAP",
                "okx_instruments_swap.json",
            ),
        ],
        [CASES[2], CASES[3]],
    ),
    (
        "bybit_spot",
        ["BTCUSDT"],
        [
            (
                "/v5/market/instruments-info",
                "category=spot&symbol=BTCUSDT",
                "bybit_instruments_spot.json",
            )
        ],
        [CASES[4]],
    ),
    (
        "bybit_linear",
        ["BTCUSDT"],
        [
            (
                "/v5/market/instruments-info",
                "category=linear&symbol=BTCUSDT",
                "bybit_instruments_linear.json",
            )
        ],
        [CASES[5]],
    ),
    (
        "kraken",
        ["ETH/BTC"],
        [("/0/public/AssetPairs", "pair=ETH/BTC", "kraken_asset_pairs.json")],
        [CASES[6]],
    ),
    (
        "coinbase",
        ["BTC-USD"],
        [("/api/v3/brokerage/market/products/BTC-USD", "", "coinbase_product.json")],
        [CASES[7]],
    ),
]


@pytest.mark.parametrize(
    ("kind", "symbols", "requests", "cases"), FETCHES, ids=[f[0] for f in FETCHES]
)
async def test_fetch_asks_the_venue_path_and_parses(
    venue: Venue,
    kind: str,
    symbols: list[str],
    requests: list[tuple[str, str, str]],
    cases: list[Case],
) -> None:
    for path, query, fixture in requests:
        venue.serve(path, query, raw(fixture))
    rest = venue.client()
    try:
        listings = await fetch_listings(kind, symbols, rest=rest, venue_name=f"{kind}-test")
    finally:
        await rest.close()
    assert venue.seen == [(path, query) for path, query, _ in requests]
    assert list(listings) == symbols
    for symbol, case in zip(symbols, cases, strict=True):
        check(listings[symbol], case, venue=f"{kind}-test")


def test_every_venue_kind_is_fetched_above() -> None:
    assert sorted(VENUES) == sorted(f[0] for f in FETCHES)


async def test_fetch_instruments_applies_overrides(venue: Venue) -> None:
    venue.serve("/api/v3/exchangeInfo", 'symbols=["ETHBTC"]', raw(CASES[0].fixture))
    rest = venue.client()
    try:
        got = await fetch_instruments(
            "binance_spot",
            ("ETHBTC",),
            rest=rest,
            overrides={"ETHBTC": {"tick": "0.00001", "min_notional": "0.0001"}},
        )
    finally:
        await rest.close()
    inst = got["ETHBTC"]
    assert (inst.venue, inst.price.step, inst.min_notional) == ("binance_spot", "0.00001", "0.0001")
    assert inst.size.format(inst.lot, True) == "0.001"  # not overridden: the venue's


async def test_fetch_refuses_halted_unless_allowed(venue: Venue) -> None:
    halted = bybit_entry("bybit_instruments_linear.json", lambda e: e.update(status="Closed"))
    query = "category=linear&symbol=BTCUSDT"
    venue.serve("/v5/market/instruments-info", query, halted)
    rest = venue.client()
    try:
        with pytest.raises(ReferenceDataError, match=r"^bybit_linear:BTCUSDT: not trading"):
            await fetch_listings("bybit_linear", ["BTCUSDT"], rest=rest)
        venue.serve("/v5/market/instruments-info", query, halted)
        got = await fetch_listings("bybit_linear", ["BTCUSDT"], rest=rest, allow_halted=True)
    finally:
        await rest.close()
    assert got["BTCUSDT"].status == "Closed"


async def test_fetch_checks_everything_before_sending(venue: Venue) -> None:
    rest = venue.client()
    try:
        with pytest.raises(ReferenceDataError, match="unknown venue 'ftx'"):
            await fetch_listings("ftx", ["BTC-PERP"], rest=rest)
        with pytest.raises(ReferenceDataError, match="unknown override field 'tik'"):
            await fetch_listings(
                "okx", ["BTC-USDT"], rest=rest, overrides={"BTC-USDT": {"tik": "1"}}
            )
        with pytest.raises(ReferenceDataError, match="only OKX SPOT"):
            await fetch_listings("okx", ["BTC-USDT-241115"], rest=rest)
        with pytest.raises(ReferenceDataError, match="WebSocket v2 names"):
            await fetch_listings("kraken", ["XBTUSD"], rest=rest)
        with pytest.raises(ReferenceDataError, match="not a Coinbase product id"):
            await fetch_listings("coinbase", ["BTC/USD"], rest=rest)
    finally:
        await rest.close()
    assert venue.seen == []


async def test_fetch_rest_failure_is_one_line(venue: Venue) -> None:
    venue.serve(
        "/api/v3/exchangeInfo",
        'symbols=["NOPE"]',
        b'{"code":-1121,\n"msg":"Invalid symbol."}',
        status=400,
    )
    rest = venue.client()
    try:
        with pytest.raises(RestError) as info:
            await fetch_listings("binance_spot", ["NOPE"], rest=rest)
    finally:
        await rest.close()
    assert "\n" not in str(info.value) and "Invalid symbol." in str(info.value)
