"""The generic reader: YAML nodes -> the schema's dataclasses, by their annotations.

Every problem is reported (not just the first): a value that can't be read becomes
``INVALID``, a section with any INVALID field is INVALID itself, and the reader goes on
with its siblings. Lines of every key path read are recorded for later messages.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import re
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any, Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from arbengine.config_schema import CredentialRef, Credentials, Knob, Money, Num, knob_of
from arbengine.config_yaml import (
    BOOL,
    FLOAT,
    INT,
    NULL,
    STR,
    Problems,
    describe,
    join,
    line_of,
    mapping_items,
    parse_int,
    parse_number,
)

__all__ = ["INVALID", "Reader", "has_default", "is_null", "suggest"]


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()
# Decimal text: digits, optionally a point and more digits. No sign (amounts here are never
# negative), no exponent (1e-8 hides its size), nothing a reader could misjudge.
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_.@-]+")  # systemd: a file name in the directory
_TRUE = {"yes", "true", "on", "y"}


def close(word: str, choices: typing.Iterable[str]) -> str | None:
    """The choice closest to ``word``, if one is close enough to be what was meant."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean "x"?)' when a choice is close to ``word``, else ''."""
    hint = close(word, choices)
    return f' (did you mean "{hint}"?)' if hint else ""


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class Reader:
    """Reads one file's nodes; ``problems`` collects what is wrong, ``lines`` where every
    key path was given."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.lines: dict[str, int] = {}

    def fail(self, node: Node | None, path: str, message: str) -> _Invalid:
        self.problems.at(node, path, message)
        return INVALID

    # --- dispatch by annotation ------------------------------------------------------------

    def read(self, node: Node, tp: Any, path: str, knob: Knob) -> Any:
        self.lines.setdefault(path, line_of(node))
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (types.UnionType, typing.Union):
            if isinstance(node, ScalarNode) and node.tag == NULL:
                return None
            (inner,) = (a for a in args if a is not type(None))
            return self.read(node, inner, path, knob)
        if isinstance(node, ScalarNode) and node.tag == NULL:
            return self.fail(node, path, "a value is required here, not null")
        if origin is dict:
            return self.mapping(node, args[1], path, knob)
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return self.sequence(node, args[0], path, knob)
            return self.fixed(node, args, path, knob)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if tp is CredentialRef:
                return self.credential(node, path)
            return self.section(node, tp, path)
        if not isinstance(node, ScalarNode):
            return self.fail(node, path, f"expected {_expected(tp)}, got {describe(node)}")
        reader = _SCALARS.get(tp)
        if reader is not None:
            return reader(self, node, path, knob)
        if isinstance(tp, type) and issubclass(tp, StrEnum):
            return self.enum(node, tp, path)
        raise TypeError(f"config schema: no reader for {tp!r} at {path}")  # a schema bug

    # --- containers -----------------------------------------------------------------------

    def section(self, node: Node, cls: type, path: str) -> Any:
        if not isinstance(node, MappingNode):
            return self.fail(node, path, f"expected a mapping, got {describe(node)}")
        fields = {f.name: f for f in dataclasses.fields(cls) if "knob" in f.metadata}
        hints = _hints(cls)
        values: dict[str, Any] = {}
        bad = False
        meant: set[str] = set()  # keys a misspelt one was taken for: not also "missing"
        for key, key_node, value in mapping_items(node, path, self.problems):
            where = join(path, key)
            f = fields.get(key)
            if f is None:
                hint = close(key, fields)
                if hint:
                    meant.add(hint)
                if cls is Credentials:  # a stray key here may be the secret itself
                    self.fail(key_node, path, f"an unknown key; the keys are {', '.join(fields)}")
                else:
                    self.fail(key_node, where, f"unknown key{suggest(key, fields)}")
                bad = True
                continue
            self.lines[where] = line_of(key_node)
            if is_null(value) and has_default(f):
                continue  # `section:` with nothing under it: its defaults
            got = self.read(value, hints[key], where, knob_of(f))
            if got is INVALID:
                bad = True
            else:
                values[key] = got
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and name not in values and name not in _given(node) | meant:
                # On the line of the key that opens this section, not its first child's.
                self.problems.add(
                    self.lines.get(path, line_of(node)),
                    join(path, name),
                    "required key is missing",
                )
                bad = True
        if bad or _any_invalid(values):
            return INVALID
        return cls(**values)

    def mapping(self, node: Node, tp: Any, path: str, knob: Knob) -> Any:
        if not isinstance(node, MappingNode):
            return self.fail(node, path, f"expected a mapping, got {describe(node)}")
        out: dict[str, Any] = {}
        bad = False
        for key, key_node, value in mapping_items(node, path, self.problems):
            where = join(path, key)
            self.lines[where] = line_of(key_node)
            if not key or key != key.strip():
                self.fail(key_node, where, "a name must be non-empty, without spaces around")
                bad = True
                continue
            got = self.read(value, tp, where, knob)
            out[key] = got  # INVALID entries stay: later checks know the name exists
            bad = bad or got is INVALID
        if not out and knob.nonempty:
            return self.fail(node, path, "must not be empty")
        return out

    def sequence(self, node: Node, tp: Any, path: str, knob: Knob) -> Any:
        if not isinstance(node, SequenceNode):
            return self.fail(node, path, f"expected a list, got {describe(node)}")
        if not node.value and knob.nonempty:
            return self.fail(node, path, "must not be empty")
        return tuple(self.read(item, tp, join(path, i), knob) for i, item in enumerate(node.value))

    def fixed(self, node: Node, tps: tuple[Any, ...], path: str, knob: Knob) -> Any:
        if not isinstance(node, SequenceNode) or len(node.value) != len(tps):
            return self.fail(node, path, f"expected a list of {len(tps)} values")
        got = tuple(
            self.read(item, tp, join(path, i), knob)
            for i, (item, tp) in enumerate(zip(node.value, tps, strict=True))
        )
        return INVALID if any(v is INVALID for v in got) else got

    def credential(self, node: Node, path: str) -> Any:
        # Never echo the value: a literal here is a secret in the wrong place.
        if not isinstance(node, MappingNode):
            return self.fail(
                node,
                path,
                "a literal secret is not allowed in the config; give {env: NAME} or "
                "{credential: NAME} (a systemd credential)",
            )
        items = list(mapping_items(node, path, self.problems))
        keys = [k for k, _, _ in items]
        if len(items) != 1 or keys[0] not in ("env", "credential"):
            return self.fail(node, path, "give exactly one of {env: NAME} or {credential: NAME}")
        source, _, value = items[0]
        if not isinstance(value, ScalarNode) or value.tag != STR:
            return self.fail(value, join(path, source), "expected a name")
        pattern = _ENV_NAME if source == "env" else _CREDENTIAL_NAME
        if not pattern.fullmatch(value.value):
            what = (
                "an environment variable name (letters, digits, _)"
                if source == "env"
                else "a credential name (letters, digits, _ . @ -)"
            )
            return self.fail(value, join(path, source), f"not {what}")
        return CredentialRef(source, value.value)

    # --- scalars --------------------------------------------------------------------------

    def text(self, node: ScalarNode, path: str, knob: Knob) -> Any:
        if node.tag != STR:
            return self.fail(node, path, f"expected text, got {describe(node)}: quote it")
        if knob.nonempty and not node.value:
            return self.fail(node, path, "must not be empty")
        return node.value

    def integer(self, node: ScalarNode, path: str, knob: Knob) -> Any:
        value = parse_int(node)
        if value is None:
            if node.tag == INT:
                return self.fail(node, path, "write integers in plain decimal digits")
            return self.fail(node, path, f"expected an integer, got {describe(node)}")
        return self.bounded(node, path, knob, Decimal(value), value)

    def boolean(self, node: ScalarNode, path: str, knob: Knob) -> Any:
        if node.tag != BOOL:
            return self.fail(node, path, f"expected true or false, got {describe(node)}")
        return node.value.lower() in _TRUE

    def money(self, node: ScalarNode, path: str, knob: Knob) -> Any:
        if node.tag == FLOAT:
            return self.fail(
                node,
                path,
                f"{node.value} is a YAML float, which is not exact: write it as a quoted "
                f'string ("{node.value}")',
            )
        if node.tag == INT:
            value = parse_int(node)
            if value is None:
                return self.fail(node, path, "write integers in plain decimal digits")
            text = str(value)
        elif node.tag == STR:
            text = node.value
        else:
            return self.fail(node, path, f"expected decimal text, got {describe(node)}")
        if text.startswith("-") and _DECIMAL.fullmatch(text[1:]):
            return self.fail(node, path, f"must be >= 0, got {text}")
        if not _DECIMAL.fullmatch(text):
            return self.fail(node, path, f'expected decimal text like "0.01", got {text!r}')
        dec = Decimal(text)
        return self.bounded(node, path, knob, dec, Money(dec))

    def number(self, node: ScalarNode, path: str, knob: Knob) -> Any:
        dec = parse_number(node)
        if dec is None:
            return self.fail(node, path, f"expected a number, got {describe(node)}")
        return self.bounded(node, path, knob, dec, Num(dec))

    def bounded(self, node: Node, path: str, knob: Knob, dec: Decimal, value: Any) -> Any:
        for bound, words in ((knob.ge, ">="), (knob.gt, ">"), (knob.le, "<="), (knob.lt, "<")):
            if bound is not None and not _COMPARE[words](dec, bound):
                return self.fail(node, path, f"must be {words} {bound}, got {dec}")
        return value

    def enum(self, node: ScalarNode, cls: type[StrEnum], path: str) -> Any:
        values = [m.value for m in cls]
        if node.tag != STR or node.value not in values:
            shown = f'"{node.value}"' if node.tag == STR else describe(node)
            return self.fail(
                node,
                path,
                f"{shown} is not one of {', '.join(values)}{suggest(str(node.value), values)}",
            )
        return cls(node.value)


_COMPARE: dict[str, Callable[[Decimal, Decimal], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_SCALARS: dict[Any, Callable[[Reader, ScalarNode, str, Knob], Any]] = {
    str: Reader.text,
    int: Reader.integer,
    bool: Reader.boolean,
    Money: Reader.money,
    Num: Reader.number,
}


def _expected(tp: Any) -> str:
    return {
        str: "text",
        int: "an integer",
        bool: "true or false",
        Money: "decimal text",
        Num: "a number",
    }.get(tp, "a value")


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL


def has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _given(node: MappingNode) -> set[str]:
    return {k.value for k, _ in node.value if isinstance(k, ScalarNode)}


def _any_invalid(values: dict[str, Any]) -> bool:
    for v in values.values():
        if v is INVALID:
            return True
        if isinstance(v, dict) and any(x is INVALID for x in v.values()):
            return True
        if isinstance(v, tuple) and any(x is INVALID for x in v):
            return True
    return False
