"""What a reload changes: every changed key path, applied live or refused.

``diff(old, new)`` walks both configs by the schema. A change under a field marked
reloadable (``knob(reload=True)``: thresholds, sizes, limits, a pair's ``enabled``) is
applied; any other is refused with one message naming its key path. Pairs are matched by
id, so reordering them changes nothing. ``ConfigChange.config`` is the config to run after
the reload: the old one with only the applied changes, checked as a whole again (a new
size limit must still suit the old instruments).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from arbengine.config_schema import Config, PairSpec, knob_of
from arbengine.config_yaml import Problems, join

__all__ = ["Change", "ConfigChange", "diff"]

ADDED = "(added)"
REMOVED = "(removed)"


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    old: str
    new: str
    reloadable: bool

    @property
    def message(self) -> str:
        if self.reloadable:
            return f"{self.path}: {self.old} -> {self.new}"
        if self.old == ADDED:
            return f"{self.path}: cannot be added on reload, restart to add it"
        if self.new == REMOVED:
            return f"{self.path}: cannot be removed on reload, restart to remove it"
        return f"{self.path}: not reloadable, restart to change"


@dataclass(frozen=True, slots=True)
class ConfigChange:
    applied: tuple[Change, ...]
    refused: tuple[Change, ...]
    config: Config  # what runs after the reload: old + applied

    def __bool__(self) -> bool:
        return bool(self.applied or self.refused)

    @property
    def messages(self) -> list[str]:
        """One line per change, applied ones first."""
        return [c.message for c in (*self.applied, *self.refused)]

    def journal_fields(self) -> dict[str, Any]:
        """The change as journal fields (paths and values only: no secret is ever in a
        config, credentials are references)."""
        return {
            "applied": {c.path: [c.old, c.new] for c in self.applied},
            "refused": [c.path for c in self.refused],
        }


def diff(old: Config, new: Config) -> ConfigChange:
    """Changes from ``old`` to ``new``; ConfigError if the config that would run (old plus
    the reloadable changes) breaks a rule."""
    changes: list[Change] = []
    _walk(old, new, "", False, changes)
    merged = _merge(old, new, False)
    assert isinstance(merged, Config)
    merged = dataclasses.replace(merged, source=new.source, lines=new.lines)
    if any(c.reloadable for c in changes) and any(not c.reloadable for c in changes):
        # A mix: the merged config is one nobody wrote; check it as a whole.
        from arbengine.config import check_config

        problems = Problems(new.source)
        check_config(merged, problems)
        if problems:
            raise problems.error()
    return ConfigChange(
        tuple(c for c in changes if c.reloadable),
        tuple(c for c in changes if not c.reloadable),
        merged,
    )


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "{...}"
    return str(value)


def _fields(value: Any) -> list[tuple[str, bool]]:
    return [(f.name, knob_of(f).reload) for f in dataclasses.fields(value) if "knob" in f.metadata]


def _is_pairs(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(p, PairSpec) for p in value) and value != ()


def _walk(old: Any, new: Any, path: str, reload: bool, out: list[Change]) -> None:
    if old == new:
        return
    if dataclasses.is_dataclass(old) and type(old) is type(new) and not isinstance(old, type):
        for name, flag in _fields(old):
            _walk(getattr(old, name), getattr(new, name), join(path, name), reload or flag, out)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            where = join(path, key)
            if key not in new:
                out.append(Change(where, _show(old[key]), REMOVED, reload))
            else:
                _walk(old[key], new[key], where, reload, out)
        for key in new:
            if key not in old:
                out.append(Change(join(path, key), ADDED, _show(new[key]), reload))
        return
    if _is_pairs(old) and _is_pairs(new):
        old_ids = {p.id: p for p in old}
        new_ids = {p.id: p for p in new}
        for pid, p in old_ids.items():
            where = f"{path}[{pid}]"
            if pid not in new_ids:
                out.append(Change(where, "pair", REMOVED, reload))
            else:
                _walk(p, new_ids[pid], where, reload, out)
        for pid in new_ids:
            if pid not in old_ids:
                out.append(Change(f"{path}[{pid}]", ADDED, "pair", reload))
        return
    out.append(Change(path, _show(old), _show(new), reload))


def _merge(old: Any, new: Any, reload: bool) -> Any:
    """``old`` with the reloadable parts of ``new``."""
    if reload:
        return new
    if old == new:
        return old
    if dataclasses.is_dataclass(old) and type(old) is type(new) and not isinstance(old, type):
        return dataclasses.replace(
            old,
            **{
                name: _merge(getattr(old, name), getattr(new, name), flag)
                for name, flag in _fields(old)
            },
        )
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _merge(v, new[k], False) if k in new else v for k, v in old.items()}
    if _is_pairs(old) and _is_pairs(new):
        new_ids = {p.id: p for p in new}
        return tuple(_merge(p, new_ids[p.id], False) if p.id in new_ids else p for p in old)
    return old
