"""Instrument reference data: each venue's public metadata endpoint → ``Instrument``.

A venue publishes, per instrument, its price tick, order lot (quantity step), minimum order
size and notional, and for contracts the contract value. This module turns those replies
into the core's ``Instrument`` (plus the venue's status and, for Kraken, the decimals its
book texts carry, in a ``Listing``), with per-instrument overrides from config that win over
what the venue says.

Exactness. Every decimal read here is the venue's own text, handed to the compiled ``Grid``
as text: no float is ever made from it. The venues document these fields as JSON strings,
so a JSON number where text is expected is refused, never converted. Binance, OKX, Bybit and
Coinbase replies are parsed with orjson: it would turn a JSON number into a float, but no
number is ever read as a decimal, so none can lose digits. Kraken's AssetPairs reply mixes
numbers in (``pair_decimals``, ``lot_decimals``, ``lot_multiplier`` as integers, fee tiers
as fractions), so it goes through ``json.loads(parse_float=Decimal)``: no float exists
anywhere in its parsed tree, integers stay exact, and a number found where text is expected
is reported with its exact wire text.

Errors are ``ReferenceDataError``: one line naming the venue, the symbol and the field (and
where its value came from), because a bad tick would corrupt every price of a book.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from typing import Any, NamedTuple, Protocol

import orjson

from arbengine._core.errors import FixedPointError
from arbengine._core.fixed import Grid
from arbengine._core.instrument import Instrument
from arbengine.venues.errors import VenueError
from arbengine.venues.rest import RestClient

__all__ = [
    "OVERRIDE_FIELDS",
    "VENUES",
    "Listing",
    "ParseReply",
    "ReferenceDataError",
    "VenueEndpoint",
    "apply_overrides",
    "binance_spot_instruments",
    "binance_usdm_instruments",
    "bybit_linear_instruments",
    "bybit_spot_instruments",
    "coinbase_instruments",
    "fetch_instruments",
    "fetch_listings",
    "kraken_instruments",
    "okx_instruments",
]

# Instrument fields an override may set, as decimal text (YAML: quote them, "0.01").
OVERRIDE_FIELDS = ("tick", "lot", "size_step", "multiplier", "min_size", "min_notional")

Overrides = Mapping[str, Mapping[str, str]]  # symbol -> field -> decimal text

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")
_COINBASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# Kraken's REST ``wsname`` still spells some assets the v1 way; WebSocket v2 wants these.
_KRAKEN_V2_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}


class ReferenceDataError(VenueError, ValueError):
    """Reference data (or an override) that cannot become an Instrument; one line."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One instrument as its venue lists it.

    ``status`` is the venue's own status text. ``price_decimals`` and ``qty_decimals`` are
    the decimals of the venue's book texts where a checksum needs them (Kraken
    ``pair_decimals`` / ``lot_decimals``, for ``BookSync``); None elsewhere.
    """

    instrument: Instrument
    status: str
    price_decimals: int | None = None
    qty_decimals: int | None = None


# --- small helpers -----------------------------------------------------------------------


def _fail(where: str, what: str) -> ReferenceDataError:
    return ReferenceDataError(f"{where}: {what}".replace("\n", " ").replace("\r", " "))


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"number {value}"  # the wire text, exactly
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"{type(value).__name__} {value!r}"


def _step(decimals: int) -> str:
    """The text of 10**-decimals: 0 -> "1", 3 -> "0.001"."""
    return "1" if decimals == 0 else "0." + "0" * (decimals - 1) + "1"


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _product(where: str, a: str, b: str, what: str) -> str:
    """Exact decimal product of two decimal texts, as plain text."""
    with localcontext() as ctx:
        ctx.prec = 80
        ctx.traps[Inexact] = True
        try:
            return _plain(Decimal(a) * Decimal(b))
        except (Inexact, InvalidOperation) as exc:  # pragma: no cover - 80 digits always fit
            raise _fail(where, f"{what}: {a} x {b} is not exact ({exc!r})") from exc


class _Node:
    """A JSON object of a venue reply, with the path that names its fields in errors."""

    __slots__ = ("data", "path", "where")

    def __init__(self, data: object, where: str, path: str) -> None:
        if not isinstance(data, dict):
            raise _fail(where, f"{path or 'the reply'} is {_describe(data)}, not a JSON object")
        self.data: dict[str, Any] = data
        self.where = where
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> object:
        if key not in self.data:
            raise _fail(self.where, f"missing field {self.name(key)}")
        value: object = self.data[key]
        return value

    def has(self, key: str) -> bool:
        value = self.data.get(key)
        return value is not None and value != ""

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise _fail(
                self.where, f"{self.name(key)} must be a JSON string, got {_describe(value)}"
            )
        if not value:
            raise _fail(self.where, f"{self.name(key)} is empty")
        return value

    def decimal(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise _fail(
                self.where,
                f"{self.name(key)} must be decimal text in a JSON string, got {_describe(value)}",
            )
        if not _DECIMAL.match(value):
            raise _fail(self.where, f"{self.name(key)} {value!r} is not plain decimal text")
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(self.where, f"{self.name(key)} must be an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise _fail(self.where, f"{self.name(key)} {value} is outside [{low}, {high}]")
        return value

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise _fail(
                self.where, f"{self.name(key)} must be true or false, got {_describe(value)}"
            )
        return value

    def node(self, key: str) -> _Node:
        return _Node(self.get(key), self.where, self.name(key))

    def array(self, key: str) -> list[object]:
        value = self.get(key)
        if not isinstance(value, list):
            raise _fail(self.where, f"{self.name(key)} is {_describe(value)}, not an array")
        return value


class _Fields:
    """The decimal fields of one instrument: overrides first, then what the venue says.

    A field that has an override is never read from the reply, so an override also stands
    in for a field the venue leaves out or gets wrong.
    """

    __slots__ = ("sources", "values", "where")

    def __init__(self, where: str, overrides: Mapping[str, str]) -> None:
        self.where = where
        self.values: dict[str, str] = dict(overrides)
        self.sources: dict[str, str] = dict.fromkeys(overrides, "override")

    def wants(self, field: str) -> bool:
        return field not in self.values

    def set(self, field: str, text: str, source: str) -> None:
        if self.wants(field):
            self.values[field] = text
            self.sources[field] = source

    def read(self, field: str, node: _Node, key: str) -> None:
        if self.wants(field):
            self.set(field, node.decimal(key), node.name(key))

    def read_optional(self, field: str, node: _Node, key: str) -> None:
        """A field the venue may leave out (or send as ""): absent means none, "0"."""
        if self.wants(field):
            if node.has(key):
                self.read(field, node, key)
            else:
                self.set(field, "0", f"{node.name(key)} (absent: none)")


class _Head(NamedTuple):
    """What a venue entry says besides the decimal fields."""

    base: str
    quote: str
    status: str
    tradable: bool
    status_field: str
    price_decimals: int | None = None
    qty_decimals: int | None = None


_EntryParser = Callable[[_Node, _Fields], _Head]


def _check_fields(where: str, overrides: object) -> dict[str, str]:
    if not isinstance(overrides, Mapping):
        raise _fail(
            where,
            f"overrides must be a mapping of field to decimal text, got {_describe(overrides)}",
        )
    checked: dict[str, str] = {}
    for field, value in overrides.items():
        if field not in OVERRIDE_FIELDS:
            raise _fail(
                where, f"unknown override field {field!r} (known: {', '.join(OVERRIDE_FIELDS)})"
            )
        if not isinstance(value, str):
            raise _fail(
                where,
                f"override {field} must be decimal text (quote it in YAML), got {_describe(value)}",
            )
        if not _DECIMAL.match(value):
            raise _fail(where, f"override {field} {value!r} is not plain decimal text")
        checked[field] = value
    return checked


def _check_symbols(venue_name: str, symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str):
        raise _fail(venue_name, f"symbols must be a list of symbols, got the string {symbols!r}")
    out = list(symbols)
    if not out:
        raise _fail(venue_name, "no symbols requested")
    seen: set[str] = set()
    for symbol in out:
        if not isinstance(symbol, str) or not symbol or symbol != symbol.strip():
            raise _fail(venue_name, f"bad symbol {symbol!r}")
        if symbol in seen:
            raise _fail(venue_name, f"symbol {symbol!r} requested twice")
        seen.add(symbol)
    return out


def _check_overrides(
    venue_name: str, symbols: Sequence[str], overrides: Overrides | None
) -> dict[str, dict[str, str]]:
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise _fail(venue_name, f"overrides must map symbol to fields, got {_describe(overrides)}")
    wanted = set(symbols)
    out: dict[str, dict[str, str]] = {}
    for symbol, fields in overrides.items():
        if symbol not in wanted:
            raise _fail(venue_name, f"overrides given for {symbol!r}, which is not requested")
        out[symbol] = _check_fields(f"{venue_name}:{symbol}", fields)
    return out


def _grid(where: str, field: str, text: str, source: str) -> Grid:
    try:
        return Grid(text, f"{where} {field}")
    except FixedPointError as exc:
        raise _fail(where, f"{field} {text!r} from {source} is not a usable step ({exc})") from exc


def _build(
    where: str,
    venue: str,
    symbol: str,
    base: str,
    quote: str,
    values: Mapping[str, str],
    sources: Mapping[str, str],
) -> Instrument:
    """An Instrument from decimal texts, each checked on its own so errors name the field."""
    for field in ("tick", "lot"):
        if field not in values:  # pragma: no cover - every parser sets both
            raise _fail(where, f"no {field}")
    _grid(where, "tick", values["tick"], sources["tick"])
    lot_grid = _grid(where, "lot", values["lot"], sources["lot"])
    multiplier = values.get("multiplier", "1")
    _grid(where, "multiplier", multiplier, sources.get("multiplier", "default"))
    size_step = values.get("size_step")
    size = lot_grid
    if size_step is not None:
        size = _grid(where, "size_step", size_step, sources["size_step"])
        try:
            size.parse(values["lot"])
        except FixedPointError as exc:
            raise _fail(
                where,
                f"lot {values['lot']!r} from {sources['lot']} is not a whole number of "
                f"size_step {size_step!r} from {sources['size_step']}",
            ) from exc
    min_size = values.get("min_size", "0")
    try:
        size.parse(min_size)
    except FixedPointError as exc:
        raise _fail(
            where,
            f"min_size {min_size!r} from {sources.get('min_size', 'default')} is off the "
            f"{size.step} size grid",
        ) from exc
    min_notional = values.get("min_notional", "0")
    try:
        return Instrument(
            venue,
            symbol,
            base,
            quote,
            values["tick"],
            values["lot"],
            multiplier=multiplier,
            min_size=min_size,
            min_notional=min_notional,
            size_step=size_step,
        )
    except (FixedPointError, TypeError) as exc:
        raise _fail(where, str(exc)) from exc


def apply_overrides(instrument: Instrument, overrides: Mapping[str, str]) -> Instrument:
    """``instrument`` with the fields in ``overrides`` (field -> decimal text) replaced.

    A field not overridden keeps its value. The size step follows an overridden lot unless
    the instrument had a finer one of its own; fields left as they were must still fit the
    new grids (a ``min_size`` off a new lot is an error naming it, not a silent rounding).
    """
    where = instrument.name
    checked = _check_fields(where, overrides)
    if not checked:
        return instrument
    size = instrument.size
    values = {
        "tick": instrument.price.step,
        "lot": size.format(instrument.lot, True),
        "multiplier": instrument.multiplier.step,
        "min_size": size.format(instrument.min_size, True),
        "min_notional": instrument.min_notional,
    }
    if instrument.lot != 1:  # a size step finer than the lot: keep it
        values["size_step"] = size.step
    sources = dict.fromkeys(values, "the instrument")
    values.update(checked)
    sources.update(dict.fromkeys(checked, "override"))
    return _build(
        where,
        instrument.venue,
        instrument.symbol,
        instrument.base,
        instrument.quote,
        values,
        sources,
    )


# --- reply decoding and the common selection ---------------------------------------------


def _load(venue_name: str, body: bytes) -> object:
    """A reply whose decimals are all JSON strings (numbers in it are never read as decimals)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _fail(venue_name, f"the reply is not JSON ({exc})") from exc


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _load_exact(venue_name: str, body: bytes) -> object:
    """A reply with numbers in it: every number exact (Decimal or int), never a float."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(venue_name, f"the reply is not JSON ({exc})") from exc


def _index(venue_name: str, entries: Sequence[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, entry in entries:
        if key in out:
            raise _fail(f"{venue_name}:{key}", "listed twice in the reply")
        out[key] = entry
    return out


def _select(
    venue_name: str,
    symbols: Sequence[str],
    entries: Mapping[str, object],
    overrides: Overrides | None,
    allow_halted: bool,
    parse: _EntryParser,
    entry_path: Callable[[str], str],
    missing_hint: str = "",
) -> dict[str, Listing]:
    wanted = _check_symbols(venue_name, symbols)
    checked = _check_overrides(venue_name, wanted, overrides)
    out: dict[str, Listing] = {}
    for symbol in wanted:
        where = f"{venue_name}:{symbol}"
        if symbol not in entries:
            raise _fail(where, f"not in the venue's reply{missing_hint}")
        fields = _Fields(where, checked.get(symbol, {}))
        head = parse(_Node(entries[symbol], where, entry_path(symbol)), fields)
        if not head.tradable and not allow_halted:
            raise _fail(
                where,
                f"not trading: {head.status_field} is {head.status!r} (allow_halted=True loads it)",
            )
        instrument = _build(
            where,
            venue_name,
            symbol,
            head.base,
            head.quote,
            fields.values,
            fields.sources,
        )
        out[symbol] = Listing(instrument, head.status, head.price_decimals, head.qty_decimals)
    return out


def _entries_by(root: _Node, list_key: str, id_key: str) -> list[tuple[str, object]]:
    """(id, entry) for each object of ``root[list_key]``; the id must be a string."""
    out: list[tuple[str, object]] = []
    for i, entry in enumerate(root.array(list_key)):
        node = _Node(entry, root.where, f"{root.name(list_key)}[{i}]")
        out.append((node.text(id_key), entry))
    return out


# --- Binance ---------------------------------------------------------------------------------


def _binance_filters(node: _Node) -> dict[str, _Node]:
    filters: dict[str, _Node] = {}
    for i, item in enumerate(node.array("filters")):
        f = _Node(item, node.where, f"{node.name('filters')}[{i}]")
        kind = f.text("filterType")
        filters.setdefault(kind, _Node(item, node.where, kind))
    return filters


def _binance_common(node: _Node, fields: _Fields) -> dict[str, _Node]:
    filters = _binance_filters(node)

    def need(kind: str) -> _Node:
        if kind not in filters:
            raise _fail(node.where, f"missing filter {kind}")
        return filters[kind]

    if fields.wants("tick"):
        fields.read("tick", need("PRICE_FILTER"), "tickSize")
    if fields.wants("lot") or fields.wants("min_size"):
        lot_size = need("LOT_SIZE")
        fields.read("lot", lot_size, "stepSize")
        fields.read("min_size", lot_size, "minQty")
    return filters


def _binance_spot_entry(node: _Node, fields: _Fields) -> _Head:
    filters = _binance_common(node, fields)
    if fields.wants("min_notional"):
        # NOTIONAL replaced MIN_NOTIONAL on spot; a symbol may carry either, or none.
        if "NOTIONAL" in filters:
            fields.read_optional("min_notional", filters["NOTIONAL"], "minNotional")
        elif "MIN_NOTIONAL" in filters:
            fields.read_optional("min_notional", filters["MIN_NOTIONAL"], "minNotional")
        else:
            fields.set("min_notional", "0", "NOTIONAL/MIN_NOTIONAL (absent: none)")
    if fields.wants("size_step"):
        # Books can hold sizes finer than the lot (orders resting from before a lot change:
        # see tests/binance_depth.py), never finer than the base asset's precision.
        decimals = node.integer("baseAssetPrecision", 0, 18)
        fields.set("size_step", _step(decimals), node.name("baseAssetPrecision"))
    status = node.text("status")
    return _Head(
        node.text("baseAsset"), node.text("quoteAsset"), status, status == "TRADING", "status"
    )


def _binance_usdm_entry(node: _Node, fields: _Fields) -> _Head:
    filters = _binance_common(node, fields)
    if fields.wants("min_notional"):
        if "MIN_NOTIONAL" in filters:
            fields.read("min_notional", filters["MIN_NOTIONAL"], "notional")
        else:
            fields.set("min_notional", "0", "MIN_NOTIONAL (absent: none)")
    status = node.text("status")
    return _Head(
        node.text("baseAsset"), node.text("quoteAsset"), status, status == "TRADING", "status"
    )


def _binance(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    overrides: Overrides | None,
    allow_halted: bool,
    parse: _EntryParser,
) -> dict[str, Listing]:
    root = _Node(_load(venue_name, body), venue_name, "")
    entries = _index(venue_name, _entries_by(root, "symbols", "symbol"))
    return _select(
        venue_name, symbols, entries, overrides, allow_halted, parse, lambda s: f"symbols[{s}]"
    )


def binance_spot_instruments(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    *,
    overrides: Overrides | None = None,
    allow_halted: bool = False,
) -> dict[str, Listing]:
    """Binance spot ``GET /api/v3/exchangeInfo``: PRICE_FILTER, LOT_SIZE, NOTIONAL."""
    return _binance(body, venue_name, symbols, overrides, allow_halted, _binance_spot_entry)


def binance_usdm_instruments(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    *,
    overrides: Overrides | None = None,
    allow_halted: bool = False,
) -> dict[str, Listing]:
    """Binance USDⓈ-M ``GET /fapi/v1/exchangeInfo``: PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL."""
    return _binance(body, venue_name, symbols, overrides, allow_halted, _binance_usdm_entry)


# --- OKX ---------------------------------------------------------------------------------------


_OKX_KINDS = "only OKX SPOT (BASE-QUOTE) and SWAP (BASE-QUOTE-SWAP) instruments are supported"


def _okx_kind(symbol: str) -> str | None:
    parts = symbol.split("-")
    if len(parts) == 2 and all(parts):
        return "SPOT"
    if len(parts) == 3 and parts[2] == "SWAP" and parts[0] and parts[1]:
        return "SWAP"
    return None


def _okx_entry(node: _Node, fields: _Fields) -> _Head:
    expected = _okx_kind(node.text("instId"))
    if expected is None:
        raise _fail(node.where, _OKX_KINDS)
    inst_type = node.text("instType")
    if inst_type != expected:
        raise _fail(node.where, f"instType is {inst_type!r}, expected {expected!r}")
    fields.read("tick", node, "tickSz")
    fields.read("lot", node, "lotSz")  # contracts for SWAP, base currency for SPOT
    fields.read("min_size", node, "minSz")
    fields.set("min_notional", "0", "minimum notional (OKX publishes none)")
    if inst_type == "SPOT":
        base, quote = node.text("baseCcy"), node.text("quoteCcy")
    else:
        family_key = "instFamily" if node.has("instFamily") else "uly"
        family = node.text(family_key).split("-")
        if len(family) != 2 or not all(family):
            raise _fail(node.where, f"{node.name(family_key)} is not BASE-QUOTE")
        base, quote = family
        ct_type = node.text("ctType")
        if ct_type != "linear":
            raise _fail(
                node.where,
                f"ctType is {ct_type!r}: only linear contracts (value in base units) are supported",
            )
        if fields.wants("multiplier"):
            value_ccy = node.text("ctValCcy")
            if value_ccy != base:
                raise _fail(node.where, f"ctValCcy is {value_ccy!r}, expected the base {base!r}")
            ct_val = node.decimal("ctVal")
            ct_mult = node.decimal("ctMult")
            fields.set(
                "multiplier",
                _product(node.where, ct_val, ct_mult, "ctVal x ctMult"),
                "ctVal x ctMult",
            )
    state = node.text("state")
    return _Head(base, quote, state, state == "live", "state")


def okx_instruments(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    *,
    overrides: Overrides | None = None,
    allow_halted: bool = False,
) -> dict[str, Listing]:
    """OKX ``GET /api/v5/public/instruments`` (SPOT or SWAP): tickSz, lotSz, minSz, ctVal."""
    root = _Node(_load(venue_name, body), venue_name, "")
    code = root.text("code")
    if code != "0":
        msg = root.data.get("msg", "")
        raise _fail(venue_name, f"the reply has code {code!r} (msg {msg!r})")
    entries = _index(venue_name, _entries_by(root, "data", "instId"))
    return _select(
        venue_name, symbols, entries, overrides, allow_halted, _okx_entry, lambda s: f"data[{s}]"
    )


# --- Bybit -------------------------------------------------------------------------------------


def _bybit_spot_entry(node: _Node, fields: _Fields) -> _Head:
    fields.read("tick", node.node("priceFilter"), "tickSize")
    lots = node.node("lotSizeFilter")
    # Spot's order step is basePrecision; read qtyStep instead should spot ever carry one.
    fields.read("lot", lots, "qtyStep" if lots.has("qtyStep") else "basePrecision")
    # minOrderQty is documented as no longer checked (minOrderAmt is): still a floor that
    # can only make us skip an order the venue would take, never send one it refuses.
    fields.read_optional("min_size", lots, "minOrderQty")
    fields.read_optional("min_notional", lots, "minOrderAmt")
    status = node.text("status")
    return _Head(
        node.text("baseCoin"), node.text("quoteCoin"), status, status == "Trading", "status"
    )


def _bybit_linear_entry(node: _Node, fields: _Fields) -> _Head:
    fields.read("tick", node.node("priceFilter"), "tickSize")
    lots = node.node("lotSizeFilter")
    fields.read("lot", lots, "qtyStep")
    fields.read("min_size", lots, "minOrderQty")
    fields.read_optional("min_notional", lots, "minNotionalValue")
    status = node.text("status")
    return _Head(
        node.text("baseCoin"), node.text("quoteCoin"), status, status == "Trading", "status"
    )


def _bybit(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    overrides: Overrides | None,
    allow_halted: bool,
    category: str,
    parse: _EntryParser,
) -> dict[str, Listing]:
    root = _Node(_load(venue_name, body), venue_name, "")
    code = root.get("retCode")
    if isinstance(code, bool) or code != 0:
        msg = root.data.get("retMsg", "")
        raise _fail(venue_name, f"the reply has retCode {_describe(code)} (retMsg {msg!r})")
    result = root.node("result")
    got = result.text("category")
    if got != category:
        raise _fail(venue_name, f"result.category is {got!r}, expected {category!r}")
    entries = _index(venue_name, _entries_by(result, "list", "symbol"))
    return _select(
        venue_name,
        symbols,
        entries,
        overrides,
        allow_halted,
        parse,
        lambda s: f"result.list[{s}]",
        " (Bybit lists only Trading symbols unless asked for a status)",
    )


def bybit_spot_instruments(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    *,
    overrides: Overrides | None = None,
    allow_halted: bool = False,
) -> dict[str, Listing]:
    """Bybit ``GET /v5/market/instruments-info?category=spot``."""
    return _bybit(body, venue_name, symbols, overrides, allow_halted, "spot", _bybit_spot_entry)


def bybit_linear_instruments(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    *,
    overrides: Overrides | None = None,
    allow_halted: bool = False,
) -> dict[str, Listing]:
    """Bybit ``GET /v5/market/instruments-info?category=linear`` (sizes in base coin)."""
    return _bybit(body, venue_name, symbols, overrides, allow_halted, "linear", _bybit_linear_entry)


# --- Kraken ------------------------------------------------------------------------------------


def _kraken_v2(wsname: str) -> str | None:
    """The WebSocket v2 symbol of a REST ``wsname``: "XBT/USD" -> "BTC/USD"."""
    legs = wsname.split("/")
    if len(legs) != 2 or not all(legs):
        return None
    return "/".join(_KRAKEN_V2_ASSETS.get(leg, leg) for leg in legs)


def _kraken_entry(node: _Node, fields: _Fields) -> _Head:
    price_decimals = node.integer("pair_decimals", 0, 18)
    qty_decimals = node.integer("lot_decimals", 0, 18)
    fields.read("tick", node, "tick_size")
    fields.set("lot", _step(qty_decimals), node.name("lot_decimals"))
    if fields.wants("multiplier"):
        multiplier = node.integer("lot_multiplier", 1, 10**18)
        fields.set("multiplier", str(multiplier), node.name("lot_multiplier"))
    fields.read("min_size", node, "ordermin")
    fields.read_optional("min_notional", node, "costmin")
    base, quote = str(_kraken_v2(node.text("wsname"))).split("/")
    status = node.text("status")
    return _Head(base, quote, status, status == "online", "status", price_decimals, qty_decimals)


def kraken_instruments(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    *,
    overrides: Overrides | None = None,
    allow_halted: bool = False,
) -> dict[str, Listing]:
    """Kraken ``GET /0/public/AssetPairs``; symbols are WebSocket v2 names ("BTC/USD").

    Entries are matched by their ``wsname`` turned into the v2 spelling (XBT -> BTC,
    XDG -> DOGE); entries without a ``wsname`` cannot be subscribed on v2 and are skipped.
    """
    root = _Node(_load_exact(venue_name, body), venue_name, "")
    errors = root.array("error")
    if errors:
        raise _fail(venue_name, f"the reply has errors {[str(e) for e in errors]!r}")
    result = root.node("result")
    entries: list[tuple[str, object]] = []
    keys: dict[str, str] = {}
    for key, entry in result.data.items():
        node = _Node(entry, venue_name, f"result.{key}")
        if not node.has("wsname"):
            continue
        v2 = _kraken_v2(node.text("wsname"))
        if v2 is None:
            raise _fail(venue_name, f"{node.name('wsname')} {node.data['wsname']!r} is not A/B")
        entries.append((v2, entry))
        keys.setdefault(v2, key)
    return _select(
        venue_name,
        symbols,
        _index(venue_name, entries),
        overrides,
        allow_halted,
        _kraken_entry,
        lambda s: f"result.{keys[s]}",
    )


# --- Coinbase ----------------------------------------------------------------------------------


def _coinbase_entry(node: _Node, fields: _Fields) -> _Head:
    product_type = node.data.get("product_type")
    if product_type == "FUTURE":
        raise _fail(node.where, "product_type is 'FUTURE': only spot products are supported")
    # price_increment is the price tick; older replies only have quote_increment.
    fields.read(
        "tick", node, "price_increment" if node.has("price_increment") else "quote_increment"
    )
    fields.read("lot", node, "base_increment")
    fields.read("min_size", node, "base_min_size")
    fields.read_optional("min_notional", node, "quote_min_size")
    status = node.text("status")
    blocked = [key for key in ("trading_disabled", "is_disabled", "cancel_only") if node.flag(key)]
    shown = f"{status} ({', '.join(blocked)})" if blocked else status
    tradable = status.lower() == "online" and not blocked
    return _Head(
        node.text("base_currency_id"),
        node.text("quote_currency_id"),
        shown,
        tradable,
        "status/trading_disabled/is_disabled/cancel_only",
    )


def coinbase_instruments(
    body: bytes,
    venue_name: str,
    symbols: Sequence[str],
    *,
    overrides: Overrides | None = None,
    allow_halted: bool = False,
) -> dict[str, Listing]:
    """Coinbase Advanced Trade ``GET /api/v3/brokerage/market/products/{product_id}``
    (one product) or the ``market/products`` list (``{"products": [...]}``)."""
    root = _Node(_load(venue_name, body), venue_name, "")
    listed = "products" in root.data
    if listed:
        entries = _entries_by(root, "products", "product_id")
    else:
        entries = [(root.text("product_id"), root.data)]

    def path(symbol: str) -> str:
        return f"products[{symbol}]" if listed else ""

    return _select(
        venue_name,
        symbols,
        _index(venue_name, entries),
        overrides,
        allow_halted,
        _coinbase_entry,
        path,
    )


# --- fetching ------------------------------------------------------------------------------


class ParseReply(Protocol):
    """The signature every ``*_instruments`` parser above has."""

    def __call__(
        self,
        body: bytes,
        venue_name: str,
        symbols: Sequence[str],
        *,
        overrides: Overrides | None = None,
        allow_halted: bool = False,
    ) -> dict[str, Listing]: ...


class _Request(NamedTuple):
    path: str
    params: dict[str, str]
    weight: float
    symbols: list[str]


def _binance_spot_requests(name: str, symbols: list[str]) -> list[_Request]:
    # One request for all symbols: symbols=["A","B"] (a JSON array); weight 20 as documented.
    listed = json.dumps(symbols, separators=(",", ":"))
    return [_Request("/api/v3/exchangeInfo", {"symbols": listed}, 20.0, symbols)]


def _binance_usdm_requests(name: str, symbols: list[str]) -> list[_Request]:
    # The USDⓈ-M endpoint takes no symbol filter: every symbol in one reply, weight 1.
    return [_Request("/fapi/v1/exchangeInfo", {}, 1.0, symbols)]


def _okx_requests(name: str, symbols: list[str]) -> list[_Request]:
    out = []
    for s in symbols:
        kind = _okx_kind(s)
        if kind is None:
            raise _fail(f"{name}:{s}", _OKX_KINDS)
        out.append(
            _Request("/api/v5/public/instruments", {"instType": kind, "instId": s}, 1.0, [s])
        )
    return out


def _bybit_requests(category: str) -> Callable[[str, list[str]], list[_Request]]:
    def requests(name: str, symbols: list[str]) -> list[_Request]:
        return [
            _Request("/v5/market/instruments-info", {"category": category, "symbol": s}, 1.0, [s])
            for s in symbols
        ]

    return requests


def _kraken_requests(name: str, symbols: list[str]) -> list[_Request]:
    for s in symbols:
        if _kraken_v2(s) != s:
            raise _fail(f"{name}:{s}", "Kraken symbols are WebSocket v2 names like 'BTC/USD'")
    # AssetPairs accepts the A/B names as well as its own keys; entries are matched by wsname.
    return [_Request("/0/public/AssetPairs", {"pair": ",".join(symbols)}, 1.0, symbols)]


def _coinbase_requests(name: str, symbols: list[str]) -> list[_Request]:
    for s in symbols:
        if not _COINBASE_ID.match(s):
            raise _fail(f"{name}:{s}", "not a Coinbase product id like 'BTC-USD'")
    return [_Request(f"/api/v3/brokerage/market/products/{s}", {}, 1.0, [s]) for s in symbols]


@dataclass(frozen=True, slots=True)
class VenueEndpoint:
    """How to ask one venue kind for its reference data, and how to read the reply."""

    parse: ParseReply
    requests: Callable[[str, list[str]], list[_Request]]


VENUES: dict[str, VenueEndpoint] = {
    "binance_spot": VenueEndpoint(binance_spot_instruments, _binance_spot_requests),
    "binance_usdm": VenueEndpoint(binance_usdm_instruments, _binance_usdm_requests),
    "okx": VenueEndpoint(okx_instruments, _okx_requests),
    "bybit_spot": VenueEndpoint(bybit_spot_instruments, _bybit_requests("spot")),
    "bybit_linear": VenueEndpoint(bybit_linear_instruments, _bybit_requests("linear")),
    "kraken": VenueEndpoint(kraken_instruments, _kraken_requests),
    "coinbase": VenueEndpoint(coinbase_instruments, _coinbase_requests),
}


async def fetch_listings(
    venue: str,
    symbols: Sequence[str],
    *,
    rest: RestClient,
    overrides: Overrides | None = None,
    venue_name: str | None = None,
    allow_halted: bool = False,
) -> dict[str, Listing]:
    """Fetch and parse ``symbols`` from ``venue`` (a key of ``VENUES``), in request order.

    ``rest`` is a RestClient on the venue's REST base URL. ``venue_name`` is the
    Instrument's venue (default: ``venue``). One request for Binance and Kraken; one per
    symbol for OKX, Bybit and Coinbase, one after another. Symbols and overrides (symbol ->
    field -> decimal text) are checked before anything is sent. REST failures propagate as
    the RestClient's one-line ``RestError``.
    """
    if venue not in VENUES:
        raise ReferenceDataError(f"unknown venue {venue!r} (known: {', '.join(VENUES)})")
    name = venue_name or venue
    wanted = _check_symbols(name, symbols)
    checked = _check_overrides(name, wanted, overrides)
    endpoint = VENUES[venue]
    found: dict[str, Listing] = {}
    for request in endpoint.requests(name, wanted):
        body = await rest.get(request.path, request.params or None, weight=request.weight)
        mine = {s: checked[s] for s in request.symbols if s in checked}
        found.update(
            endpoint.parse(body, name, request.symbols, overrides=mine, allow_halted=allow_halted)
        )
    return {s: found[s] for s in wanted}


async def fetch_instruments(
    venue: str,
    symbols: Sequence[str],
    *,
    rest: RestClient,
    overrides: Overrides | None = None,
    venue_name: str | None = None,
    allow_halted: bool = False,
) -> dict[str, Instrument]:
    """``fetch_listings`` reduced to the Instruments, keyed by symbol."""
    listings = await fetch_listings(
        venue,
        symbols,
        rest=rest,
        overrides=overrides,
        venue_name=venue_name,
        allow_halted=allow_halted,
    )
    return {s: listing.instrument for s, listing in listings.items()}
