"""Reading a config file into YAML nodes that remember their lines, and the error type.

The config is composed (``yaml.SafeLoader``: tags resolved, nothing constructed), not loaded,
so every key and value keeps its line for error messages, duplicate keys are still visible
(a loaded dict would silently keep the last), and a YAML float is still known to be one
(money must be decimal text).

Every problem is one line ``FILE:LINE: key.path: message``; ``ConfigError`` carries all of a
file's problems at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "NULL",
    "STR",
    "ConfigError",
    "Problem",
    "Problems",
    "compose",
    "describe",
    "line_of",
    "mapping_items",
    "nearest_line",
    "parse_int",
]

_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null"))
MERGE = f"{_TAG}merge"
_WHAT = {
    STR: "text",
    INT: "an integer",
    FLOAT: "a YAML float",
    BOOL: "a boolean",
    NULL: "null",
    f"{_TAG}timestamp": "a date",
    f"{_TAG}binary": "binary data",
}
# YAML 1.1 reads 010 as octal, 0x10 as hex and 1:30 as base 60: a plain decimal integer is
# the only form we take, so that what a reader sees is what the engine gets.
_INT_TEXT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config, at a line (0: the file as a whole)."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """A config that can't be used: every problem found, one line each, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.file, p.line, p.path)))
        super().__init__("\n".join(map(str, self.problems)))

    @property
    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class Problems:
    """Collects the problems of one file while it is checked."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[Problem] = []

    def add(self, line: int, path: str, message: str) -> None:
        problem = Problem(self.file, line, path, message)
        if problem not in self.found:  # two rules can trip on the same thing
            self.found.append(problem)

    def at(self, node: Node | None, path: str, message: str) -> None:
        self.add(line_of(node), path, message)

    def __bool__(self) -> bool:
        return bool(self.found)

    def __len__(self) -> int:
        return len(self.found)

    def error(self) -> ConfigError:
        return ConfigError(self.found)


def nearest_line(lines: Mapping[str, int], path: str) -> int:
    """The line ``path`` was given on, or its nearest given ancestor's (0: none)."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return 0


def line_of(node: Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def describe(node: Node) -> str:
    """What a node is, in words, for "expected X, got Y" (never its value: it may be a
    secret pasted in the wrong place)."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _WHAT.get(node.tag, f"a value tagged {node.tag}")


def compose(text: str, file: str) -> Node:
    """The document's root node; ConfigError (one line) for a YAML error, several
    documents, or an empty file."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = exc.problem or exc.context or "not valid YAML"
        if exc.context and exc.problem and exc.problem.startswith("but "):
            what = f"{exc.context}, {exc.problem}"  # "expected a single document ..., but"
        raise ConfigError([Problem(file, line, "", f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:  # a reader error: bytes that are not text
        raise ConfigError([Problem(file, 0, "", f"not readable as YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if root is None or (isinstance(root, ScalarNode) and root.tag == NULL):
        raise ConfigError([Problem(file, 1, "", "the file is empty (no config in it)")])
    return root


def mapping_items(
    node: MappingNode, path: str, problems: Problems
) -> Iterator[tuple[str, Node, Node]]:
    """(key text, key node, value node) of a mapping, after ``<<`` merges, reporting
    duplicate and non-scalar keys. A key is the text as written (``on:`` is the key "on",
    not True)."""
    seen: dict[str, Node] = {}
    own: list[tuple[str, Node, Node]] = []
    merged: list[tuple[str, Node, Node]] = []
    for key_node, value in node.value:
        if key_node.tag == MERGE:
            merged.extend(_merged(value, path, problems))
            continue
        if not isinstance(key_node, ScalarNode):
            problems.at(key_node, path, f"a key must be plain text, not {describe(key_node)}")
            continue
        key = key_node.value
        first = seen.get(key)
        if first is not None:
            problems.at(
                key_node,
                join(path, key),
                f"duplicate key (first given on line {line_of(first)})",
            )
            continue
        seen[key] = key_node
        own.append((key, key_node, value))
    # Keys written out win over merged ones; a merged key appears once.
    taken = set(seen)
    for key, key_node, value in merged:
        if key not in taken:
            taken.add(key)
            yield key, key_node, value
    yield from own


def _merged(value: Node, path: str, problems: Problems) -> list[tuple[str, Node, Node]]:
    sources = value.value if isinstance(value, SequenceNode) else [value]
    out: list[tuple[str, Node, Node]] = []
    for source in sources:
        if not isinstance(source, MappingNode):
            problems.at(source, path, f"<< merges a mapping, not {describe(source)}")
            continue
        out.extend(mapping_items(source, path, problems))
    return out


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def parse_int(node: ScalarNode) -> int | None:
    """A plain decimal integer scalar's value, else None."""
    if node.tag != INT:
        return None
    text = node.value
    if not _INT_TEXT.fullmatch(text) or "__" in text or text.endswith("_"):
        return None
    return int(text.replace("_", ""))


def parse_number(node: ScalarNode) -> Decimal | None:
    """An int, YAML float or numeric text as an exact Decimal (finite), else None: for
    quantities that are not money (seconds, probabilities), where a float is fine."""
    if node.tag not in (INT, FLOAT, STR):
        return None
    if node.tag == INT:
        value = parse_int(node)
        return None if value is None else Decimal(value)
    try:
        dec = Decimal(node.value.replace("_", "") if node.tag == FLOAT else node.value)
    except InvalidOperation:
        return None
    return dec if dec.is_finite() else None


def read_text(path: Path, file: str) -> str:
    """The file's text, or ConfigError: missing, a directory, unreadable, not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(file, 0, "", f"not UTF-8 text ({exc.reason})")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(file, 0, "", "cannot read: it is a directory")]) from None
    except OSError as exc:
        raise ConfigError([Problem(file, 0, "", f"cannot read: {exc.strerror}")]) from None
