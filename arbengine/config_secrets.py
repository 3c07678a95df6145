"""Venue credentials: resolved from where the config points, never written anywhere.

The config names where a secret is (``{env: NAME}`` or ``{credential: NAME}``, the latter a
file in ``$CREDENTIALS_DIRECTORY`` that systemd's ``LoadCredential=`` fills); the secret
itself only ever lives in a ``Secret``, whose str, repr and format show a mask, and which
refuses to be pickled or copied into a journal by accident. ``reveal()`` is the one way to
the value: call it where the value is used (signing a request), nowhere else.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from arbengine.config_schema import CredentialRef

__all__ = ["CredentialError", "Secret", "resolve_credential"]

MASK = "******"


class CredentialError(ValueError):
    """A credential that can't be had: one line naming where it was looked for, never a
    value."""


class Secret:
    """A secret value; every printable form is masked."""

    __slots__ = ("_value", "ref")

    def __init__(self, value: str, ref: CredentialRef) -> None:
        self._value = value
        self.ref = ref

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.ref}, {MASK})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not picklable")

    def __eq__(self, other: object) -> bool:
        # Constant-time: equality of secrets is a comparison an attacker may time.
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self.ref)


def resolve_credential(
    ref: CredentialRef,
    *,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """The secret ``ref`` points to, or CredentialError (one line: not set, empty,
    unreadable; never the value). A credential file's trailing newline is not part of it."""
    env = os.environ if environ is None else environ
    if ref.source == "env":
        value = env.get(ref.name)
        if value is None:
            raise CredentialError(f"environment variable {ref.name} is not set")
        if not value.strip():
            raise CredentialError(f"environment variable {ref.name} is empty")
        return Secret(value, ref)
    if ref.source != "credential":
        raise CredentialError(f"unknown credential source {ref.source!r}")
    if "/" in ref.name or ref.name in ("", ".", ".."):
        raise CredentialError(f"credential {ref.name!r}: not a file name")
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise CredentialError(
            f"credential {ref.name}: $CREDENTIALS_DIRECTORY is not set (is the service "
            f"given LoadCredential={ref.name}:...?)"
        )
    path = Path(directory) / ref.name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CredentialError(f"credential {ref.name}: no such file {path}") from None
    except OSError as exc:
        raise CredentialError(
            f"credential {ref.name}: cannot read {path}: {exc.strerror}"
        ) from None
    try:
        value = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise CredentialError(f"credential {ref.name}: {path} is not UTF-8 text") from None
    if not value.strip():
        raise CredentialError(f"credential {ref.name}: {path} is empty")
    return Secret(value, ref)
