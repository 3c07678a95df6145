"""The daemon's YAML config: load, validate, diff for reload, resolve credentials.

    config = load("arbengine.yaml")   # ConfigError: every problem, one line each
    config = load_demo()               # the embedded demo (configs/demo.yaml)
    change = diff(config, load(path))  # on SIGHUP: change.applied / .refused / .config

A problem reads ``FILE:LINE: key.path: message``. Validation is strict: unknown keys (with
a "did you mean"), duplicate keys, wrong types, YAML floats for money, out-of-range values
and cross-key mistakes (a pair on a venue or instrument that doesn't exist, legs of
different base assets, quotes with no conversion, an edge band upside down, a minimum
notional no order could reach, a traded asset without limits...) are all reported at once.

The schema is in ``config_schema`` (one dataclass per section; ``knob(reload=True)`` marks
what a reload may change), the reader in ``config_parse``, the cross-key rules in
``config_check``, the builders of engine objects in ``config_build``, reload diffs in
``config_diff`` and credentials in ``config_secrets``.

Defaults that depend on where the daemon runs are filled in at load: ``journal.directory``
is ``$STATE_DIRECTORY/journal`` (systemd's StateDirectory=) or else
``$XDG_STATE_HOME/arbengine/journal`` (``~/.local/state/...``); ``control.socket`` is
``control.default_socket_path`` (where ``arbengine ctl`` looks): ``$ARBENGINE_CONTROL_SOCKET``,
else ``$RUNTIME_DIRECTORY/control.sock``, else ``/run/arbengine/control.sock`` for root, else
``$XDG_RUNTIME_DIR/arbengine/control.sock`` or ``/tmp/arbengine-UID/control.sock``.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode

from arbengine import config_build as build
from arbengine.config_check import check
from arbengine.config_diff import Change, ConfigChange, diff
from arbengine.config_parse import INVALID, Reader, has_default, is_null, suggest
from arbengine.config_schema import (
    Config,
    ControlSpec,
    CredentialRef,
    JournalSpec,
    PairSpec,
    VenueSpec,
    knob_of,
)
from arbengine.config_secrets import CredentialError, Secret, resolve_credential
from arbengine.config_yaml import (
    ConfigError,
    Problem,
    Problems,
    compose,
    describe,
    line_of,
    mapping_items,
    read_text,
)

__all__ = [
    "DEMO",
    "Change",
    "Config",
    "ConfigChange",
    "ConfigError",
    "CredentialError",
    "CredentialRef",
    "PairSpec",
    "Problem",
    "Secret",
    "VenueSpec",
    "build",
    "check_config",
    "demo_text",
    "diff",
    "load",
    "load_demo",
    "load_text",
    "resolve_credential",
]

DEMO = "demo.yaml"  # in the package's configs/ (the repository's configs/demo.yaml)
DEMO_NAME = "<demo>"  # what the embedded demo is called in messages


def load(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config at ``path``; ConfigError with every problem."""
    file = os.fspath(path)
    return load_text(read_text(Path(file), file), file, environ=environ)


def demo_text() -> str:
    return resources.files("arbengine").joinpath("configs", DEMO).read_text(encoding="utf-8")


def load_demo(*, environ: Mapping[str, str] | None = None) -> Config:
    """The embedded demo: simulated venues on loopback, paper trading, no keys."""
    return load_text(demo_text(), DEMO_NAME, environ=environ)


def load_text(
    text: str, file: str = "<config>", *, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate YAML ``text`` (``file`` names it in messages)."""
    problems = Problems(file)
    root = compose(text, file)
    if not isinstance(root, MappingNode):
        raise ConfigError(
            [
                Problem(
                    file,
                    root.start_mark.line + 1,
                    "",
                    f"the top level must be a mapping of sections (venues, pairs, risk, ...), "
                    f"not {describe(root)}",
                )
            ]
        )
    reader = Reader(problems)
    sections = {f.name: f for f in dataclasses.fields(Config) if "knob" in f.metadata}
    hints = typing.get_type_hints(Config)
    parts: dict[str, Any] = {}
    for key, key_node, value in mapping_items(root, "", problems):
        f = sections.get(key)
        if f is None:
            problems.at(key_node, key, f"unknown section{suggest(key, sections)}")
            continue
        reader.lines[key] = line_of(key_node)
        if is_null(value) and has_default(f):
            continue  # an empty section: its defaults
        parts[key] = reader.read(value, hints[key], key, knob_of(f))
    for name, f in sections.items():
        if name in parts:
            continue
        if not has_default(f):
            problems.add(line_of(root), name, "required section is missing")
            parts[name] = INVALID
        elif f.default_factory is not dataclasses.MISSING:
            parts[name] = f.default_factory()
        else:
            parts[name] = f.default
    _fill_defaults(parts, os.environ if environ is None else environ)
    check(parts, problems, reader.lines)
    if problems or any(v is INVALID for v in parts.values()):
        raise problems.error()
    return Config(**parts, source=file, lines=dict(reader.lines))


def check_config(config: Config, problems: Problems) -> None:
    """The cross-key rules on a built config (a reload's merged one)."""
    parts = {
        f.name: getattr(config, f.name) for f in dataclasses.fields(Config) if "knob" in f.metadata
    }
    check(parts, problems, config.lines)


def _fill_defaults(parts: dict[str, Any], env: Mapping[str, str]) -> None:
    journal = parts.get("journal")
    if isinstance(journal, JournalSpec) and journal.directory is None:
        parts["journal"] = dataclasses.replace(journal, directory=str(default_journal_dir(env)))
    control = parts.get("control")
    if isinstance(control, ControlSpec) and control.socket is None:
        parts["control"] = dataclasses.replace(control, socket=str(default_socket(env)))


def default_journal_dir(env: Mapping[str, str]) -> Path:
    state = env.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / "journal"  # systemd lists several with ':'
    xdg = env.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return base / "arbengine" / "journal"


def default_socket(env: Mapping[str, str]) -> Path:
    # The one rule, shared with ``arbengine ctl`` (control.default_socket_path).
    from arbengine.control import default_socket_path

    return default_socket_path(env)
